"""The seeds' service classes as thin façades over :class:`esb.sdk.EsbClient`.

Method names and keyword arguments are the seeds'. ``tenant_id`` is sent in bodies the API
accepts it in (the server rejects one that disagrees with the token, 403); on calls without a
body the token alone decides. Each service opens an HTTP session per call (``persistent=False``)
so the seeds' examples need no cleanup and run under any event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from esb.sdk import EsbClient, LiveTail
from event_streaming_bus.models import EventConfig, StreamConfig, SubscriptionConfig, as_body

Config = dict[str, Any] | Any


def _tenant(body: dict[str, Any], tenant_id: str | None, user_id: str | None = None,
            user_field: str | None = None) -> dict[str, Any]:
    if tenant_id is not None:
        body.setdefault("tenant_id", tenant_id)
    if user_id is not None and user_field:
        body.setdefault(user_field, user_id)
    return body


class _Service:
    def __init__(self, client: EsbClient | None = None, *, url: str | None = None,
                 token: str | None = None) -> None:
        self.client = client or EsbClient(url, token, persistent=False)


class EventSourcingService(_Service):
    async def append_event(self, aggregate_id: str, aggregate_type: str, event_type: str,
                           event_data: dict[str, Any] | None = None,
                           expected_version: int | None = None, tenant_id: str | None = None,
                           user_id: str | None = None, correlation_id: str | None = None,
                           metadata: dict[str, Any] | None = None, **extra: Any) -> str:
        """Append with optimistic concurrency; a stale ``expected_version`` raises
        ``esb.sdk.VersionConflict`` (``.current_version`` says what it is now)."""
        body = _tenant({"aggregate_id": aggregate_id, "aggregate_type": aggregate_type,
                        "event_type": event_type, "event_data": event_data or {},
                        "expected_version": expected_version, "correlation_id": correlation_id,
                        "metadata": metadata, **extra}, tenant_id, user_id, "user_id")
        answer = await self.client.append({k: v for k, v in body.items() if v is not None})
        return str(answer["event_id"])

    async def reconstruct_aggregate(self, aggregate_id: str, aggregate_type: str,
                                    update_snapshots: bool = False,
                                    tenant_id: str | None = None, **extra: Any
                                    ) -> dict[str, Any]:
        """The API's answer plus the seed's spelling: ``version`` and ``data``."""
        answer = await self.client.reconstruct(aggregate_id=aggregate_id,
                                               aggregate_type=aggregate_type,
                                               update_snapshots=update_snapshots, **extra)
        return {**answer, "version": answer["current_version"], "data": answer["state"]}

    async def get_aggregate_events(self, aggregate_id: str, tenant_id: str | None = None,
                                   **params: Any) -> list[dict[str, Any]]:
        return (await self.client.aggregate_events(aggregate_id, **params))["events"]


class StreamManagementService(_Service):
    async def create_stream(self, stream_config: StreamConfig | Config,
                            tenant_id: str | None = None, user_id: str | None = None) -> str:
        answer = await self.client.create_stream(_tenant(as_body(stream_config), tenant_id))
        return str(answer["stream_id"])

    async def get_stream(self, stream_id: str, tenant_id: str | None = None) -> dict[str, Any]:
        return await self.client.get_stream(stream_id)

    async def list_streams(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        return await self.client.list_streams()

    async def create_stream_processor(self, processor_config: Config,
                                      tenant_id: str | None = None,
                                      user_id: str | None = None) -> str:
        answer = await self.client.create_processor(as_body(processor_config))
        return str(answer["processor_id"])

    async def start_stream_processor(self, processor_id: str, tenant_id: str | None = None
                                     ) -> dict[str, Any]:
        return await self.client.start_processor(processor_id)

    async def stop_stream_processor(self, processor_id: str, tenant_id: str | None = None
                                    ) -> dict[str, Any]:
        return await self.client.stop_processor(processor_id)

    async def get_processor_metrics(self, processor_id: str, tenant_id: str | None = None
                                    ) -> dict[str, Any]:
        return await self.client.processor_metrics(processor_id)


class StreamProcessingService(StreamManagementService):
    """Seed 000 lists it apart; the bus serves processors from the same API."""


class EventPublishingService(_Service):
    async def publish_event(self, event_config: EventConfig | Config, payload: Any = None,
                            stream_id: str | None = None, tenant_id: str | None = None,
                            user_id: str | None = None) -> str:
        """Publish; the event id is fixed client-side, so the SDK's retries are idempotent."""
        body = _tenant(as_body(event_config), tenant_id, user_id, "user_id")
        body["payload"] = payload if payload is not None else {}
        if stream_id is not None:
            body["stream_id"] = stream_id
        return str((await self.client.publish(body))["event_id"])

    async def publish_batch(self, events: list[tuple[EventConfig | Config, Any]],
                            stream_id: str | None = None, tenant_id: str | None = None
                            ) -> list[str]:
        bodies = []
        for config, payload in events:
            body = _tenant(as_body(config), tenant_id)
            body["payload"] = payload
            if stream_id is not None:
                body["stream_id"] = stream_id
            bodies.append(body)
        answer = await self.client.publish_batch(bodies)
        return [str(e["event_id"]) for e in answer["events"]]


class EventConsumptionService(_Service):
    async def get_stream_events(self, stream_id: str, tenant_id: str | None = None,
                                limit: int | None = None) -> list[dict[str, Any]]:
        """Archived events of a stream, oldest first (at most ``limit``)."""
        out: list[dict[str, Any]] = []
        async for event in self.client.stream_events(stream_id):
            out.append(event)
            if limit is not None and len(out) >= limit:
                break
        return out

    async def query_events(self, tenant_id: str | None = None, **filters: Any
                           ) -> AsyncIterator[dict[str, Any]]:
        async for event in self.client.query_events(**filters):
            yield event

    def live(self, stream_id: str, event_type: str = "*") -> LiveTail:
        """``async with service.live("user_events") as tail: async for m in tail: ...``"""
        return self.client.tail(stream_id, event_type)


class SchemaRegistryService(_Service):
    async def register_schema(self, schema_config: Config, tenant_id: str | None = None,
                              created_by: str | None = None) -> str:
        return str((await self.client.register_schema(as_body(schema_config)))["schema_id"])

    async def register_enhanced_schema(self, schema_config: Config,
                                       tenant_id: str | None = None,
                                       created_by: str | None = None) -> str:
        answer = await self.client.register_enhanced_schema(as_body(schema_config))
        return str(answer["schema_id"])

    async def get_schema(self, schema_id: str, tenant_id: str | None = None) -> dict[str, Any]:
        return await self.client.get_schema(schema_id)

    async def validate_event(self, schema_id: str, event_data: Any,
                             tenant_id: str | None = None) -> dict[str, Any]:
        return await self.client.validate(schema_id, event_data)

    async def get_schema_evolution(self, event_type: str, tenant_id: str | None = None
                                   ) -> dict[str, Any]:
        return await self.client.schema_evolution(event_type)


class ConsumerManagementService(_Service):
    async def create_consumer_group(self, group_config: Config, tenant_id: str | None = None,
                                    user_id: str | None = None) -> str:
        return str((await self.client.create_consumer_group(as_body(group_config)))["group_id"])

    async def get_consumer_lag(self, group_id: str, tenant_id: str | None = None
                               ) -> dict[str, Any]:
        return await self.client.consumer_lag(group_id)

    async def trigger_rebalance(self, group_id: str, tenant_id: str | None = None
                                ) -> dict[str, Any]:
        return await self.client.rebalance(group_id)

    async def list_consumer_groups(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        return await self.client.list_consumer_groups()

    async def create_subscription(self, config: SubscriptionConfig | Config,
                                  tenant_id: str | None = None,
                                  created_by: str | None = None) -> str:
        answer = await self.client.create_subscription(as_body(config))
        return str(answer["subscription_id"])

    async def get_subscription_status(self, subscription_id: str,
                                      tenant_id: str | None = None) -> dict[str, Any]:
        return await self.client.subscription_status(subscription_id)

    async def cancel_subscription(self, subscription_id: str, tenant_id: str | None = None
                                  ) -> dict[str, Any]:
        return await self.client.cancel_subscription(subscription_id)


class EventStreamingService(_Service):
    """The raw client under the seed's name: every :class:`EsbClient` method is available."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


class APGEventStreamingIntegration:
    """Seed 000's bundle of services; holds them, adds nothing."""

    def __init__(self, **services: Any) -> None:
        self.services = services
        for name, service in services.items():
            setattr(self, name, service)
