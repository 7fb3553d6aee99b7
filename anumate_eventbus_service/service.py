"""``EventBusService``: publish CloudEvents to one stream; subscribe handlers through Kafka
consumer groups when the client has broker access, else over the bus's WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from anumate_eventbus_service.config import EventBusConfig
from anumate_eventbus_service.models import CloudEvent, EventSubscription
from esb import ids
from esb.sdk import AlreadyExists, EsbClient, NotFound
from esb.sdk.kafka import KafkaReader

log = logging.getLogger(__name__)
Handler = Callable[[CloudEvent], Awaitable[Any] | Any]


class EventBusService:
    """The stream named by the config is created on first use (no setup step needed)."""

    def __init__(self, config: EventBusConfig | None = None,
                 client: EsbClient | None = None) -> None:
        self.config = config or EventBusConfig()
        self.client = client or EsbClient(self.config.esb_url, self.config.esb_token)
        self._stream: dict[str, Any] | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.running = False

    async def start(self) -> None:
        await self._ensure_stream()
        self.running = True

    async def stop(self) -> None:
        for subscription_id in list(self._tasks):
            await self.unsubscribe(subscription_id)
        await self.client.close()
        self.running = False

    async def _ensure_stream(self) -> dict[str, Any]:
        if self._stream is not None:
            return self._stream
        name = self.config.bus_stream
        try:
            self._stream = await self.client.get_stream(name)
        except NotFound:
            with contextlib.suppress(AlreadyExists):  # another service created it first
                await self.client.create_stream(stream_name=name,
                                                source_capability=self.config.source_capability,
                                                partitions=self.config.partitions)
            self._stream = await self.client.get_stream(name)
        return self._stream

    async def publish_event(self, event: CloudEvent) -> str:
        """Publish to the configured stream; answers the event id once Kafka acknowledged."""
        await self._ensure_stream()
        body = {**event.to_structured(), "stream": self.config.bus_stream}
        return str((await self.client.publish_cloudevent(body))["event_id"])

    async def subscribe(self, subscription: EventSubscription, handler: Handler,
                        name: str | None = None) -> str:
        """Call ``handler`` for every matching event published from now on; returns an id.
        Returns once the subscription is in place (partitions assigned, or the server's hello),
        so nothing published after it is missed."""
        stream = await self._ensure_stream()
        subscription_id = f"sub_{name or 'handler'}_{ids.ulid()[-8:].lower()}"
        if self.config.kafka_bootstrap:
            events = await self._from_kafka(stream, subscription)
        else:
            events = await self._from_websocket(subscription)

        async def pump() -> None:
            try:
                async for event in events:
                    if not subscription.matches(event):
                        continue
                    try:
                        result = handler(event)
                        if asyncio.iscoroutine(result):
                            await result
                    except Exception:  # logged and passed: one bad event must not stop all
                        log.exception("handler %s failed on %s", name, event.id)
            finally:
                await events.aclose()  # commits what was handled, leaves the group

        self._tasks[subscription_id] = asyncio.create_task(pump(), name=subscription_id)
        return subscription_id

    async def _from_kafka(self, stream: dict[str, Any], subscription: EventSubscription
                          ) -> AsyncGenerator[CloudEvent, None]:
        """The stream's lane topics through a consumer group named after one of them (topic
        names hold the tenant, so tenants never share a group) and the durable name (else the
        queue group); no name: a live view without a group."""
        topics = sorted(set(stream["topics"].values()))
        name = subscription.durable_name or subscription.queue_group
        reader = KafkaReader(str(self.config.kafka_bootstrap), topics,
                             f"{topics[0]}.sdk.{name}" if name else None,
                             rebalance_timeout_ms=self.config.group_rebalance_timeout_ms,
                             session_timeout_ms=self.config.group_session_timeout_ms)
        await reader.start()

        async def events() -> AsyncGenerator[CloudEvent, None]:
            try:
                async for batch in reader.batches():
                    for record, event in batch:
                        yield CloudEvent.from_sdk(event)  # handled when the pump asks again
                        reader.handled(record)
                    await reader.commit()
            finally:
                await reader.stop()

        return events()

    async def _from_websocket(self, subscription: EventSubscription
                              ) -> AsyncGenerator[CloudEvent, None]:
        types = {str(t) for t in subscription.event_types}
        live = self.client.tail(self.config.bus_stream, next(iter(types)) if len(types) == 1
                                else "*")
        await live.__aenter__()

        async def events() -> AsyncGenerator[CloudEvent, None]:
            try:
                async for message in live:
                    yield CloudEvent.model_validate(message["event"])
            finally:
                await live.close()

        return events()

    async def unsubscribe(self, subscription_id: str) -> None:
        task = self._tasks.pop(subscription_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def health_check(self) -> dict[str, Any]:
        """The seed's health shape, from the bus's ``/health``."""
        health = await self.client.health()
        return {"status": "healthy" if health.get("status") == "ok" else "unhealthy",
                "timestamp": health.get("time"),
                "details": {"bus": health.get("status"), "running": self.running,
                            "subscriptions": len(self._tasks)}}
