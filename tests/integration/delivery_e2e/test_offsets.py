"""Lag equals end minus committed per partition; replay from a time re-delivers exactly since then;
consumer groups and rebalance."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.integration.delivery_e2e.conftest import make_stream, publish, subscribe
from tests.support import consume_all, eventually, unique

pytestmark = pytest.mark.integration


async def _true_ends(bootstrap: str, topic: str, n: int) -> dict[int, int]:
    """End offsets from the records themselves (Tansu's ListOffsets counts batches)."""
    records = await consume_all(bootstrap, [topic], expect=n)
    ends: dict[int, int] = {}
    for rec in records:
        ends[rec.partition] = max(ends.get(rec.partition, 0), rec.offset + 1)
    return ends


async def _lag_by_hand(bootstrap: str, group: str, topic: str, ends: dict[int, int]
                       ) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: end - ((await consumer.committed(TopicPartition(topic, p))) or 0)
                for p, end in ends.items()}
    finally:
        await consumer.stop()


async def test_lag_is_end_minus_committed_for_each_partition(dapi, delivery_bus, bootstrap
                                                             ) -> None:
    group_env, _port = delivery_bus
    tenant = unique()
    api = dapi(tenant)
    stream = await make_stream(api)
    await publish(api, 60, keys=60)
    topic = f"{group_env.prefix}.{tenant}.{stream}.normal"
    kafka_group = f"{group_env.prefix}.{tenant}.reporting"  # a group in the tenant's namespace
    committer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=kafka_group,
                                 enable_auto_commit=False)
    await committer.start()
    try:
        ends = await _true_ends(bootstrap, topic, 60)
        assert len(ends) == 3 and all(e >= 4 for e in ends.values()), ends
        tps = [TopicPartition(topic, p) for p in range(3)]
        committer.assign(tps)
        await committer.commit({tps[0]: 1, tps[2]: ends[2] // 2})
    finally:
        await committer.stop()
    expected = await _lag_by_hand(bootstrap, kafka_group, topic, ends)
    status, lag = await api.get(f"/api/v1/consumer-groups/{kafka_group}/lag")
    assert status == 200, lag
    assert lag["partition_lags"] == {"0": expected[0], "2": expected[2]}
    assert lag["total_lag"] == expected[0] + expected[2] > 0
    status, body = await api.post(f"/api/v1/consumer-groups/{kafka_group}/rebalance")
    assert status == 409, body  # not a group the bus manages
    status, _ = await api.get(f"/api/v1/consumer-groups/{unique('nope')}/lag")
    assert status == 404


async def test_consumer_group_api_and_subscription_lag(dapi, receiver, bootstrap,
                                                       delivery_bus) -> None:
    group_env, _ = delivery_bus
    tenant = unique()
    api = dapi(tenant)
    stream = await make_stream(api)
    status, created = await api.post("/api/v1/consumer-groups", {
        "group_name": "notification_processors", "session_timeout_ms": 30000,
        "heartbeat_interval_ms": 3000, "partition_assignment_strategy": "range"})
    assert status == 201 and created["group_id"].startswith("grp_"), created
    status, dup = await api.post("/api/v1/consumer-groups", {"group_name":
                                                             "notification_processors"})
    assert status == 409, dup
    sub = await subscribe(api, stream, receiver.url("lag"),
                          consumer_group_id="notification_processors")
    ids = await publish(api, 12)

    async def arrived():
        return set(receiver.ids("lag")) >= set(ids) or None
    await eventually(arrived, timeout=60)
    group_id = created["group_id"]

    async def settled():
        _, lag = await api.get(f"/api/v1/consumer-groups/{group_id}/lag")
        ready = lag["total_lag"] == 0 and lag["active_consumers"] >= 1
        return lag if ready and lag["last_rebalance"] else None  # stats flush every second
    lag = await eventually(settled, timeout=30)
    (kafka_group,) = lag["kafka_group_ids"]
    assert kafka_group == f"{group_env.prefix}.{tenant}.{sub['subscription_id']}"
    for row in lag["partitions"]:
        assert row["lag"] == row["end_offset"] - (row["committed_offset"] or 0)  # new stream: start 0
    status, body = await api.get("/api/v1/consumer-groups")
    assert body["consumer_groups"][0]["subscriptions"] == [sub["subscription_id"]]
    status, body = await api.post(f"/api/v1/consumer-groups/{group_id}/rebalance")
    assert status == 202, body


async def test_replay_from_a_time_redelivers_exactly_the_events_since(dapi, receiver) -> None:
    api = dapi(unique())
    stream = await make_stream(api)
    sub = await subscribe(api, stream, receiver.url("replay"))
    before = await publish(api, 8)

    async def arrived(expected: set[str]):
        return set(receiver.ids("replay")) >= expected or None
    await eventually(lambda: arrived(set(before)), timeout=60)
    await asyncio.sleep(1.0)
    cut = datetime.now(UTC)
    await asyncio.sleep(1.0)
    after = await publish(api, 8)
    await eventually(lambda: arrived(set(after)), timeout=60)
    seen = len(receiver.received)
    status, body = await api.post(f"/api/v1/subscriptions/{sub['subscription_id']}/replay",
                                  {"from_time": cut.isoformat()})
    assert status == 202, body

    async def replayed():
        again = [r.headers["webhook-id"] for r in receiver.on("replay")[seen:]]
        return again if len(again) >= len(after) else None
    again = await eventually(replayed, timeout=90)
    await asyncio.sleep(3.0)  # nothing older may trickle in afterwards
    again = [r.headers["webhook-id"] for r in receiver.on("replay")[seen:]]
    assert sorted(again) == sorted(after)
