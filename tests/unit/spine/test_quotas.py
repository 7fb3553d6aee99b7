"""Quotas per tenant as pure units (ADR 0016): limits and overrides, the count check, the publish
budget on a frozen clock, and the consumer kit's ``hold`` (a held partition commits nothing past
the held record, pauses, then reads it again). Broker-backed behaviour: tests/integration/spine/
test_quotas.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition

from esb.catalog import CatalogState, Outcome
from esb.delivery.ratelimit import InMemoryRateLimiter
from esb.errors import PayloadTooLarge, QuotaExceeded, RateLimited
from esb.quotas import PublishQuota, QuotaBook, QuotaLimits, QuotaUpdate
from esb.settings import Settings
from tests.unit.spine.test_consumer_kit import TP, MemoryConsumer, Stage, run


class FakeCatalog:
    """The catalog surface the book uses, applying writes at once as the log would."""

    def __init__(self) -> None:
        self.current = CatalogState()

    async def write(self, kind: str, tenant: str, name: str, op: str,
                    data: dict[str, Any] | None = None, *, timeout: float = 15.0) -> Outcome:
        return self.current.apply(f"{kind}/{tenant}/{name}", {"op": op, "data": data})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def book(**defaults: Any) -> QuotaBook:
    return QuotaBook(QuotaLimits(**defaults), FakeCatalog())


def test_defaults_come_from_the_settings() -> None:
    limits = QuotaLimits.from_settings(Settings(quota_max_streams=7, quota_publish_events_per_s=3))
    assert limits.max_streams == 7 and limits.publish_events_per_s == 3
    assert limits.max_patterns == Settings().quota_max_patterns


async def test_overrides_apply_to_one_tenant_and_null_restores_the_default() -> None:
    quotas = book(max_streams=10)
    await quotas.update("acme", QuotaUpdate(max_streams=2, publish_events_per_s=5), user="op")
    assert quotas.limits("acme").max_streams == 2
    assert quotas.limits("acme").publish_events_per_s == 5
    assert quotas.limits("other").max_streams == 10
    await quotas.update("acme", QuotaUpdate.model_validate({"max_streams": None}), user="op")
    assert quotas.limits("acme").max_streams == 10
    assert quotas.overrides("acme") == {"publish_events_per_s": 5}


def test_a_count_over_the_limit_is_a_409_naming_it() -> None:
    quotas = book(max_streams=2, max_partitions=10)
    quotas.check_count("acme", "max_streams", 1)
    with pytest.raises(QuotaExceeded) as caught:
        quotas.check_count("acme", "max_streams", 2)
    problem = caught.value.to_problem()
    assert problem["status"] == 409 and problem["code"] == "quota_exceeded"
    assert problem["limit"] == "max_streams" and problem["maximum"] == 2
    quotas.check_count("acme", "max_partitions", 4, adding=6)
    with pytest.raises(QuotaExceeded):
        quotas.check_count("acme", "max_partitions", 4, adding=7)
    book().check_count("acme", "max_streams", 10**6)  # 0 = unlimited


async def test_http_publishing_is_refused_with_retry_after_then_allowed() -> None:
    clock = Clock()
    quota = PublishQuota(book(publish_events_per_s=2, burst_s=2), InMemoryRateLimiter(clock=clock))
    await quota.admit("acme", 4, 10)  # the burst: 2/s for 2 s
    with pytest.raises(RateLimited) as caught:
        await quota.admit("acme", 1, 10)
    assert caught.value.http_status == 429 and caught.value.details["retry_after"] == 1
    await quota.admit("other", 4, 10)  # another tenant's budget is its own
    clock.now += 0.5
    await quota.admit("acme", 1, 10)


async def test_bytes_are_limited_and_an_oversized_request_is_413() -> None:
    clock = Clock()
    quota = PublishQuota(book(publish_bytes_per_s=1000), InMemoryRateLimiter(clock=clock))
    await quota.admit("acme", 50, 900)
    with pytest.raises(RateLimited):
        await quota.admit("acme", 1, 200)
    with pytest.raises(PayloadTooLarge):
        await quota.admit("acme", 1, 1001)  # larger than any burst: retrying cannot help


async def test_ingress_takes_what_fits_and_learns_how_long_to_wait() -> None:
    clock = Clock()
    quota = PublishQuota(book(publish_events_per_s=5, publish_bytes_per_s=100),
                         InMemoryRateLimiter(clock=clock))
    assert quota.limited("acme") and not PublishQuota(book(), InMemoryRateLimiter()).limited("a")
    assert await quota.take("acme", [10] * 12) == (5, 0.0)  # one burst of events
    count, wait = await quota.take("acme", [10] * 7)
    assert count == 0 and wait == pytest.approx(1.0)  # until a whole chunk of 5 fits
    clock.now += 10
    assert await quota.take("acme", [40, 40, 40]) == (2, 0.0)  # the bytes burst binds first
    clock.now += 10
    assert await quota.take("acme", [500]) == (1, 0.0)  # one oversized record costs one burst


class PausingConsumer(MemoryConsumer):
    """The memory consumer with pause/resume as aiokafka has them: a paused partition
    returns nothing."""

    def __init__(self, values: list[bytes], batch: int = 4) -> None:
        super().__init__(values, batch)
        self._paused: set[TopicPartition] = set()

    async def getmany(self, timeout_ms: int = 0) -> dict[TopicPartition, list[Any]]:
        if TP in self._paused:
            await asyncio.sleep(0)
            return {}
        return await super().getmany(timeout_ms)

    def pause(self, *tps: TopicPartition) -> None:
        self._paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self._paused.difference_update(tps)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)


class Throttled(Stage):
    """Handles records until ``budget`` is spent, then holds the partition for a moment."""

    def __init__(self, consumer: PausingConsumer, budget: int) -> None:
        super().__init__(consumer, {})  # type: ignore[arg-type]
        self.budget = budget

    async def handle(self, batches: dict[TopicPartition, list[Any]]) -> None:
        for record in batches[TP]:
            if self.budget == 0:
                self.hold(TP, record.offset, 0.05)
                self.budget = 100  # refilled by the time the hold ends
                return
            self.budget -= 1
            self.handled.append(record.value)


async def test_a_held_partition_commits_only_before_the_hold_and_reads_it_again() -> None:
    values = [f"e{i}".encode() for i in range(8)]
    consumer = PausingConsumer(values)
    stage = Throttled(consumer, budget=2)
    await run(stage, 1)
    assert stage.handled == [b"e0", b"e1"]
    assert consumer.committed_offset == 2  # not 4: e2 and e3 were held, not consumed
    assert TP in consumer.paused() and consumer.position == 2
    await run(stage, 3)
    assert stage.handled == [b"e0", b"e1"]  # paused: nothing read meanwhile
    await asyncio.sleep(0.08)
    assert TP not in consumer.paused()
    await run(stage, 6)
    assert stage.handled == values  # everything, once, in order; nothing set aside
    assert stage.set_aside == [] and consumer.committed_offset == 8


@pytest.mark.parametrize("bad", [{"publish_events_per_s": 1e-9}, {"publish_bytes_per_s": 1e300},
                                 {"max_streams": -1}, {"burst_s": 0}, {"no_such_limit": 1}])
def test_unusable_overrides_are_refused(bad: dict[str, Any]) -> None:
    """A rate so slow that clients would wait for days, or so fast that a burst overflows, is a
    mistake: refused (422 at the API) rather than turned into a 5xx on the publish path."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        QuotaUpdate.model_validate(bad)
