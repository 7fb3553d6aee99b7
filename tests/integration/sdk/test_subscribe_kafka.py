"""Seed 003's ``subscribe`` with broker access: queue groups and durable names are Kafka
consumer groups on the stream's topics (real worker, real embedded broker)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from anumate_eventbus_service import CloudEvent, EventBusConfig, EventBusService, EventSubscription
from tests.support import eventually, unique

pytestmark = pytest.mark.integration


@pytest.fixture
def config(bus_url, token_for, broker_url) -> EventBusConfig:
    return EventBusConfig(esb_url=bus_url, esb_token=token_for(unique()),
                          stream_name=unique("anumate_"), kafka_bootstrap=broker_url,
                          group_rebalance_timeout_ms=1000, group_session_timeout_ms=3000)


async def _publish(bus: EventBusService, n: int, event_type: str = "com.anumate.work.item"
                   ) -> list[str]:
    return [await bus.publish_event(CloudEvent(type=event_type, source="test", data={"i": i}))
            for i in range(n)]


async def test_queue_group_members_share_the_work(config) -> None:
    first, second = EventBusService(config), EventBusService(config)
    handled: dict[str, list[str]] = {"first": [], "second": []}
    subscription = EventSubscription(event_types={"com.anumate.work.item"},
                                     queue_group="workers")
    for name, bus in (("first", first), ("second", second)):
        await bus.subscribe(subscription, lambda e, n=name: handled[n].append(e.id), name)
    try:
        published = await _publish(first, 30)
        await _publish(first, 2, "com.anumate.other")  # filtered out by type

        async def all_handled() -> bool:
            return len(handled["first"]) + len(handled["second"]) >= len(published)

        await eventually(all_handled)
        await asyncio.sleep(1.0)  # nothing arrives twice, late
        counts = Counter(handled["first"] + handled["second"])
        assert set(counts) == set(published) and max(counts.values()) == 1
        assert handled["first"] and handled["second"]  # both members got partitions
    finally:
        await first.stop()
        await second.stop()


async def test_durable_subscriber_resumes_after_its_last_handled_event(config) -> None:
    subscription = EventSubscription(durable_name="audit")
    before: list[str] = []
    bus = EventBusService(config)
    sub_id = await bus.subscribe(subscription, lambda e: before.append(e.id), "audit")
    handled_first = await _publish(bus, 3)
    await eventually(lambda: asyncio.sleep(0, len(before) == 3))
    await bus.unsubscribe(sub_id)  # the subscriber stops; its offsets are committed
    while_down = await _publish(bus, 2)
    await bus.stop()

    restarted = EventBusService(config)  # a new process, same durable name
    after: list[str] = []
    live: list[str] = []
    await restarted.subscribe(subscription, lambda e: after.append(e.id), "audit")
    await restarted.subscribe(EventSubscription(), lambda e: live.append(e.id), "live")
    later = await _publish(restarted, 1)
    try:
        await eventually(lambda: asyncio.sleep(0, len(after) >= 3 and live))
        await asyncio.sleep(0.5)
        assert sorted(before) == sorted(handled_first)
        assert sorted(after) == sorted(while_down + later)  # nothing replayed, nothing missed
        assert live == later  # without a durable name: only what is published from now on
    finally:
        await restarted.stop()
