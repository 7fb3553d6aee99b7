"""Seeds 000/001's SDK samples, as written but for URL and token (``ESB_URL``/``ESB_TOKEN``).

Lines marked ``# setup`` create what a sample assumes already exists (its streams, the five
earlier versions its ``expected_version=5`` refers to); everything else is the seed's text.
"""

from __future__ import annotations

import pytest

from tests.support import unique

pytestmark = pytest.mark.integration


@pytest.fixture
def seed_env(monkeypatch, bus_url, token_for):
    def use(tenant: str) -> None:
        monkeypatch.setenv("ESB_URL", bus_url)
        monkeypatch.setenv("ESB_TOKEN", token_for(tenant))

    return use


async def test_seed_001_event_sourcing(seed_env, capsys) -> None:
    seed_env("tenant_001")
    from event_streaming_bus import EventSourcingService

    setup = EventSourcingService()  # setup: versions 1..5 of user_123
    for n in range(5):
        await setup.append_event(aggregate_id="user_123", aggregate_type="User",
                                 event_data={"n": n}, event_type="user.touched",
                                 expected_version=n, tenant_id="tenant_001")

    # Initialize service
    sourcing_service = EventSourcingService()

    # Append event with concurrency control
    event_id = await sourcing_service.append_event(
        aggregate_id="user_123",
        aggregate_type="User",
        event_data={"email": "john.doe@company.com"},
        event_type="user.updated",
        expected_version=5,  # Prevent concurrent modifications
        tenant_id="tenant_001",
        user_id="user_456"
    )

    # Reconstruct aggregate state
    aggregate_state = await sourcing_service.reconstruct_aggregate(
        aggregate_id="user_123",
        aggregate_type="User",
        update_snapshots=True,
        tenant_id="tenant_001"
    )

    print(f"Current version: {aggregate_state['version']}")
    print(f"User email: {aggregate_state['data']['email']}")

    assert event_id.startswith("evt_")
    assert capsys.readouterr().out == "Current version: 6\nUser email: john.doe@company.com\n"
    from esb.sdk import VersionConflict

    with pytest.raises(VersionConflict):  # the same call again is now stale
        await sourcing_service.append_event(
            aggregate_id="user_123", aggregate_type="User", event_data={}, event_type="x.y",
            expected_version=5, tenant_id="tenant_001")


async def test_seed_001_stream_processor_schema_and_consumer_group(seed_env, capsys) -> None:
    tenant = unique()
    seed_env(tenant)
    from event_streaming_bus import (
        ConsumerManagementService,
        SchemaRegistryService,
        StreamConfig,
        StreamManagementService,
    )
    from event_streaming_bus.models import ProcessorType

    for name in ("order_events", "daily_sales"):  # setup: the processor's two streams
        await StreamManagementService().create_stream(
            StreamConfig(stream_name=name, source_capability=name))

    # Initialize service
    stream_service = StreamManagementService()

    # Create aggregation processor
    processor_config = {
        "processor_name": "daily_sales_aggregator",
        "processor_type": ProcessorType.AGGREGATE.value,
        "source_stream_id": "str_order_events",
        "target_stream_id": "str_daily_sales",
        "processing_logic": {
            "aggregation_function": "sum",
            "aggregation_field": "order_total",
            "group_by": ["customer_segment", "region"]
        },
        "window_config": {
            "window_type": "tumbling",
            "window_size_ms": 86400000,  # 24 hours
            "grace_period_ms": 3600000   # 1 hour
        },
        "state_store_config": {
            "store_type": "rocksdb",
            "changelog_topic": "sales-aggregator-changelog"
        }
    }

    processor_id = await stream_service.create_stream_processor(
        processor_config=processor_config,
        tenant_id=tenant,
        user_id="user_456"
    )

    # Start processor
    await stream_service.start_stream_processor(
        processor_id=processor_id,
        tenant_id=tenant
    )
    assert (await stream_service.get_processor_metrics(processor_id))["processor_id"] == \
        processor_id

    # Initialize service
    schema_service = SchemaRegistryService()

    # Register schema with validation rules
    schema_config = {
        "schema_name": "order_event",
        "schema_version": "1.0",
        "json_schema": {
            "type": "object",
            "properties": {
                "order_id": {"type": "string"},
                "customer_id": {"type": "string"},
                "order_total": {"type": "number", "minimum": 0},
                "currency": {"type": "string", "enum": ["USD", "EUR", "GBP"]}
            },
            "required": ["order_id", "customer_id", "order_total"]
        },
        "event_type": "order.created",
        "validation_rules": {
            "business_rules": [
                {
                    "name": "minimum_order_value",
                    "rule": "order_total >= 10.0"
                }
            ]
        }
    }

    schema_id = await schema_service.register_enhanced_schema(
        schema_config=schema_config,
        tenant_id=tenant,
        created_by="user_456"
    )

    # Validate event
    validation_result = await schema_service.validate_event(
        schema_id=schema_id,
        event_data={
            "order_id": "ord_123",
            "customer_id": "cust_456",
            "order_total": 25.99,
            "currency": "USD"
        },
        tenant_id=tenant
    )

    print(f"Valid: {validation_result['is_valid']}")
    assert capsys.readouterr().out == "Valid: True\n"
    too_small = await schema_service.validate_event(
        schema_id=schema_id, event_data={"order_id": "o", "customer_id": "c", "order_total": 2})
    assert not too_small["is_valid"]  # the business rule is enforced, not just the shape

    # Initialize service
    consumer_service = ConsumerManagementService()

    # Create consumer group
    group_config = {
        "group_name": "analytics_processors",
        "session_timeout_ms": 30000,
        "heartbeat_interval_ms": 3000,
        "partition_assignment_strategy": "range"
    }

    group_id = await consumer_service.create_consumer_group(
        group_config=group_config,
        tenant_id=tenant,
        user_id="user_456"
    )

    # Monitor consumer lag
    lag_info = await consumer_service.get_consumer_lag(
        group_id=group_id,
        tenant_id=tenant
    )

    if lag_info["total_lag"] > 1000:
        # Trigger rebalance if lag is too high
        await consumer_service.trigger_rebalance(
            group_id=group_id,
            tenant_id=tenant
        )
    assert lag_info["total_lag"] == 0 and lag_info["group_id"] == group_id


async def test_seed_001_critical_event_and_seed_000_quick_start(seed_env) -> None:
    tenant = unique()
    seed_env(tenant)
    from event_streaming_bus import (
        EventConfig,
        EventPublishingService,
        StreamConfig,
        StreamManagementService,
    )
    from event_streaming_bus.models import (
        CompressionType,
        EventPriority,
        SerializationFormat,
    )

    await StreamManagementService().create_stream(  # setup: the stream the sample names
        StreamConfig(stream_name="critical_alerts_stream", source_capability="monitoring"))

    # Publish critical event
    event_config = EventConfig(
        event_type="system.critical_alert",
        source_capability="monitoring",
        aggregate_id="alert_123",
        aggregate_type="SystemAlert",
        priority=EventPriority.CRITICAL,
        compression_type=CompressionType.NONE,
        max_retries=5
    )

    publishing_service = EventPublishingService()
    event_id = await publishing_service.publish_event(
        event_config=event_config,
        payload={
            "alert_type": "service_down",
            "service_name": "payment_service",
            "severity": "critical"
        },
        stream_id="critical_alerts_stream",
        tenant_id=tenant,
        user_id="system"
    )
    assert event_id.startswith("evt_")

    # seed 000 "Create Your First Stream"
    stream_service = StreamManagementService()
    stream_config = StreamConfig(
        stream_name="user_events",
        topic_name="apg-user-events",
        source_capability="user_management",
        partitions=6,
        replication_factor=1,  # adapted: the embedded broker has one node (seed: 3)
        compression_type=CompressionType.SNAPPY,
        default_serialization=SerializationFormat.JSON,
        retention_time_ms=604800000  # 7 days
    )
    stream_id = await stream_service.create_stream(
        stream_config=stream_config,
        tenant_id=tenant,
        user_id="your_user"
    )
    assert stream_id == "str_user_events"
    published = await publishing_service.publish_event(
        event_config=EventConfig(event_type="user.created", source_capability="user_management",
                                 aggregate_id="user_123", priority=EventPriority.HIGH,
                                 compression_type=CompressionType.SNAPPY,
                                 serialization_format=SerializationFormat.JSON),
        payload={"user_name": "john.doe"}, stream_id=stream_id, tenant_id=tenant)
    described = await stream_service.get_stream(stream_id)
    assert described["stream_name"] == "user_events" and published.startswith("evt_")
