"""``EventBusService``: publish CloudEvents to one stream, subscribe handlers over WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from anumate_eventbus_service.config import EventBusConfig
from anumate_eventbus_service.models import CloudEvent, EventSubscription
from esb import ids
from esb.sdk import AlreadyExists, EsbClient, NotFound

log = logging.getLogger(__name__)
Handler = Callable[[CloudEvent], Awaitable[Any] | Any]


class EventBusService:
    """The stream named by the config is created on first use (no setup step needed)."""

    def __init__(self, config: EventBusConfig | None = None,
                 client: EsbClient | None = None) -> None:
        self.config = config or EventBusConfig()
        self.client = client or EsbClient(self.config.esb_url, self.config.esb_token)
        self._ready = False
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

    async def _ensure_stream(self) -> None:
        if self._ready:
            return
        name = self.config.bus_stream
        try:
            await self.client.get_stream(name)
        except NotFound:
            with contextlib.suppress(AlreadyExists):  # another service created it first
                await self.client.create_stream(stream_name=name,
                                                source_capability=self.config.source_capability,
                                                partitions=self.config.partitions)
        self._ready = True

    async def publish_event(self, event: CloudEvent) -> str:
        """Publish to the configured stream; answers the event id once Kafka acknowledged."""
        await self._ensure_stream()
        body = {**event.to_structured(), "stream": self.config.bus_stream}
        return str((await self.client.publish_cloudevent(body))["event_id"])

    async def subscribe(self, subscription: EventSubscription, handler: Handler,
                        name: str | None = None) -> str:
        """Call ``handler`` for every matching event published from now on; returns an id.
        Returns once the server confirmed the subscription, so nothing after it is missed."""
        await self._ensure_stream()
        types = {str(t) for t in subscription.event_types}
        glob = next(iter(types)) if len(types) == 1 else "*"
        live = self.client.tail(self.config.bus_stream, glob)
        await live.__aenter__()
        subscription_id = f"sub_{name or 'handler'}_{ids.ulid()[-8:].lower()}"

        async def pump() -> None:
            try:
                async for message in live:
                    event = CloudEvent.model_validate(message["event"])
                    if not subscription.matches(event):
                        continue
                    try:
                        result = handler(event)
                        if asyncio.iscoroutine(result):
                            await result
                    except Exception:
                        log.exception("handler %s failed on %s", name, event.id)
            finally:
                await live.close()

        self._tasks[subscription_id] = asyncio.create_task(pump(), name=subscription_id)
        return subscription_id

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
