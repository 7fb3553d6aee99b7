"""One dedup-store suite (exactly-once delivery), in memory and against Redis."""

from __future__ import annotations

import asyncio

from esb.delivery.dedup import ClaimStatus, DedupStore


async def test_claim_deliver_then_skip(dedup: DedupStore) -> None:
    claim = await dedup.claim("sub_1", "evt_1")
    assert claim.status is ClaimStatus.CLAIMED and claim.token
    assert (await dedup.claim("sub_1", "evt_1")).status is ClaimStatus.IN_FLIGHT
    assert not await dedup.is_delivered("sub_1", "evt_1")
    await dedup.mark_delivered("sub_1", "evt_1")
    assert await dedup.is_delivered("sub_1", "evt_1")
    assert (await dedup.claim("sub_1", "evt_1")).status is ClaimStatus.ALREADY_DELIVERED


async def test_release_after_failure_allows_a_retry(dedup: DedupStore) -> None:
    claim = await dedup.claim("sub_1", "evt_2")
    assert claim.token is not None
    assert not await dedup.release("sub_1", "evt_2", "not-my-token")
    assert (await dedup.claim("sub_1", "evt_2")).status is ClaimStatus.IN_FLIGHT
    assert await dedup.release("sub_1", "evt_2", claim.token)
    assert (await dedup.claim("sub_1", "evt_2")).status is ClaimStatus.CLAIMED


async def test_release_cannot_undo_a_delivery(dedup: DedupStore) -> None:
    claim = await dedup.claim("sub_1", "evt_3")
    await dedup.mark_delivered("sub_1", "evt_3")
    assert claim.token is not None
    assert not await dedup.release("sub_1", "evt_3", claim.token)
    assert await dedup.is_delivered("sub_1", "evt_3")


async def test_subscriptions_are_independent(dedup: DedupStore) -> None:
    await dedup.claim("sub_a", "evt")
    await dedup.mark_delivered("sub_a", "evt")
    assert (await dedup.claim("sub_b", "evt")).status is ClaimStatus.CLAIMED


async def test_lease_expires_so_a_crashed_worker_does_not_block_forever(dedup: DedupStore
                                                                        ) -> None:
    assert (await dedup.claim("sub_1", "evt_4", lease_s=0.05)).status is ClaimStatus.CLAIMED
    await asyncio.sleep(0.12)
    assert (await dedup.claim("sub_1", "evt_4")).status is ClaimStatus.CLAIMED


async def test_delivered_marker_expires_after_its_ttl(make_dedup) -> None:  # type: ignore[no-untyped-def]
    store = make_dedup(delivered_ttl_s=0.05)
    await store.mark_delivered("sub_1", "evt_5")
    assert await store.is_delivered("sub_1", "evt_5")
    await asyncio.sleep(0.12)
    assert not await store.is_delivered("sub_1", "evt_5")


async def test_concurrent_claims_have_one_winner(dedup: DedupStore) -> None:
    claims = await asyncio.gather(*(dedup.claim("sub_1", "evt_6") for _ in range(20)))
    assert [c.status for c in claims].count(ClaimStatus.CLAIMED) == 1


async def test_replicas_share_what_was_delivered(make_dedup) -> None:  # type: ignore[no-untyped-def]
    replica_a, replica_b = make_dedup(), make_dedup()
    await replica_a.claim("sub_1", "evt_7")
    assert (await replica_b.claim("sub_1", "evt_7")).status is ClaimStatus.IN_FLIGHT
    await replica_a.mark_delivered("sub_1", "evt_7")
    assert (await replica_b.claim("sub_1", "evt_7")).status is ClaimStatus.ALREADY_DELIVERED
