"""Seed 003's ``anumate_eventbus_service`` samples against the shared worker.

Adapted only where a sample cannot run in a test: ``asyncio.sleep(60)`` ("keep running") waits
for the handler instead, and ``asyncio.run(main())`` is an ``await`` inside the test's loop.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.support import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def anumate_env(monkeypatch, bus_url, token_for) -> None:
    monkeypatch.setenv("ESB_URL", bus_url)
    monkeypatch.setenv("ESB_TOKEN", token_for("tenant-123"))


async def test_seed_003_basic_usage(anumate_env, capsys) -> None:
    from anumate_eventbus_service import CloudEvent, EventBusConfig, EventBusService, EventType

    received: list = []

    async def main():
        # Initialize event bus
        config = EventBusConfig()
        event_bus = EventBusService(config)
        await event_bus.start()

        # Publish an event
        event = CloudEvent(
            type=EventType.CAPSULE_CREATED,
            source="https://anumate.com/services/registry",
            data={
                "capsule_id": "cap-123",
                "name": "terraform-aws",
                "version": "1.0.0"
            }
        )

        event_id = await event_bus.publish_event(event)
        print(f"Published event: {event_id}")

        # Subscribe to events
        from anumate_eventbus_service import EventSubscription

        subscription = EventSubscription(
            event_types={EventType.CAPSULE_CREATED},
            queue_group="registry_processors",
            durable_name="registry_consumer"
        )

        async def handle_event(event: CloudEvent):
            print(f"Received: {event.type} - {event.data}")
            received.append(event)

        subscription_id = await event_bus.subscribe(
            subscription, handle_event, "registry_handler"
        )

        # Keep running (adapted: publish one more, wait until it is handled)
        await event_bus.publish_event(CloudEvent(type=EventType.POLICY_CREATED,
                                                 source="test", data={}))
        second = await event_bus.publish_event(CloudEvent(
            type=EventType.CAPSULE_CREATED, source="test", data={"capsule_id": "cap-2"}))
        await eventually(lambda: asyncio.sleep(0, received))

        # Cleanup
        await event_bus.unsubscribe(subscription_id)
        await event_bus.stop()
        return event_id, second

    first, second = await main()
    out = capsys.readouterr().out
    assert out.startswith(f"Published event: {first}\n")
    assert [e.id for e in received] == [second]  # filtered by type; subscribed after the first
    assert "Received: com.anumate.capsule.created - {'capsule_id': 'cap-2'}" in out


async def test_seed_003_service_integration(anumate_env, bus_url, token_for) -> None:
    from anumate_eventbus_service import (
        EventBusConfig,
        EventBusService,
        EventContext,
        EventPublisherFactory,
        EventSubscriberFactory,
    )

    # Initialize event bus
    event_bus = EventBusService(EventBusConfig())
    await event_bus.start()

    # Create service subscriber (moved up: the bus's live subscription starts now)
    subscriber_factory = EventSubscriberFactory(event_bus)
    policy_subscriber = subscriber_factory.create_policy_subscriber()
    policy_subscriber.event_types.add("com.anumate.capsule.created")
    await policy_subscriber.start()

    # Get service-specific publisher
    factory = EventPublisherFactory(event_bus)
    registry_publisher = factory.get_capsule_registry_publisher()

    # Publish service event
    context = EventContext(
        tenant_id="tenant-123",
        correlation_id="req-456"
    )

    event_id = await registry_publisher.publish_capsule_created(
        capsule_id="cap-789",
        capsule_name="terraform-aws",
        version="2.0.0",
        author="user@anumate.com",
        context=context
    )

    (event,) = await eventually(lambda: asyncio.sleep(0, policy_subscriber.received))
    assert event.id == event_id and event.type == "com.anumate.capsule.created"
    assert event.source == "https://anumate.com/services/capsule_registry"
    assert event.data == {"capsule_id": "cap-789", "capsule_name": "terraform-aws",
                          "version": "2.0.0", "author": "user@anumate.com"}
    assert event.tenantid == "tenant-123" and event.correlationid == "req-456"
    await policy_subscriber.stop()
    health = await event_bus.health_check()
    assert health["status"] == "healthy"
    await event_bus.stop()

    from esb.sdk import EsbClient

    async with EsbClient(bus_url, token_for("tenant-123")) as esb:  # created on first use
        assert (await esb.get_stream("anumate_events"))["stream_name"] == "anumate_events"


async def test_publishers_offer_the_event_types_the_schema_registry_holds(anumate_env, bus_url,
                                                                          token_for) -> None:
    from anumate_eventbus_service import EventBusConfig, EventBusService, EventPublisherFactory
    from esb.sdk import EsbClient

    async with EsbClient(bus_url, token_for("tenant-123")) as esb:
        for event_type in ("com.anumate.capsule.created", "com.anumate.approval.flow.granted"):
            await esb.register_schema(schema_name=event_type, event_type=event_type,
                                      json_schema={"type": "object"})
    event_bus = EventBusService(EventBusConfig())
    factory = EventPublisherFactory(event_bus)
    known = await factory.load_event_types()
    assert {"com.anumate.capsule.created", "com.anumate.approval.flow.granted"} <= known
    publisher = factory.get_capsule_registry_publisher()
    assert {"publish_capsule_created", "publish_approval_flow_granted"} <= set(dir(publisher))
    with pytest.raises(AttributeError, match="no such event type"):
        publisher.publish_capsule_exploded  # noqa: B018 - a typo fails before anything is sent
    event_id = await publisher.publish_approval_flow_granted(approval_id="a-1")
    async with EsbClient(bus_url, token_for("tenant-123")) as esb:
        event = await eventually(lambda: _archived(esb, event_id))
    assert event["event_type"] == "com.anumate.approval.flow.granted"
    assert event["payload"] == {"approval_id": "a-1"}
    await event_bus.stop()


async def _archived(esb, event_id: str):
    from esb.sdk import NotFound

    try:
        return await esb.get_event(event_id)
    except NotFound:
        return None
