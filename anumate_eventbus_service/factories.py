"""Service-specific publishers and subscribers, derived from method names, not written per type.

``factory.get_capsule_registry_publisher()`` gives a publisher whose ``publish_<noun>_<verb>``
methods publish ``com.anumate.<noun>.<verb>`` with the keyword arguments as data: every event
type the platform has (``EventType``, or any registered in the schema registry) works without a
hand-written method.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from anumate_eventbus_service.models import CloudEvent, EventContext, EventSubscription
from anumate_eventbus_service.service import EventBusService, Handler

SOURCE_ROOT = "https://anumate.com/services/"
TYPE_ROOT = "com.anumate."


def event_type_for(method: str) -> str:
    """``publish_capsule_created`` -> ``com.anumate.capsule.created``."""
    noun, _, verb = method.removeprefix("publish_").rpartition("_")
    if not noun or not verb:
        raise AttributeError(f"{method!r} is not publish_<noun>_<verb>")
    return f"{TYPE_ROOT}{noun}.{verb}"


class ServicePublisher:
    def __init__(self, bus: EventBusService, service: str) -> None:
        self.bus = bus
        self.service = service
        self.source = SOURCE_ROOT + service

    async def publish(self, event_type: str, data: dict[str, Any],
                      context: EventContext | None = None, subject: str | None = None) -> str:
        event = CloudEvent(type=event_type, source=self.source, subject=subject, data=data,
                           **(context.extensions() if context else {}))
        return await self.bus.publish_event(event)

    def __getattr__(self, name: str) -> Callable[..., Awaitable[str]]:
        if not name.startswith("publish_"):
            raise AttributeError(name)
        event_type = event_type_for(name)

        async def publish(context: EventContext | None = None, **data: Any) -> str:
            return await self.publish(event_type, data, context)

        publish.__name__ = name
        return publish


class EventPublisherFactory:
    """``get_<service>_publisher()`` for any service name."""

    def __init__(self, bus: EventBusService) -> None:
        self.bus = bus

    def __getattr__(self, name: str) -> Callable[[], ServicePublisher]:
        if not (name.startswith("get_") and name.endswith("_publisher")):
            raise AttributeError(name)
        service = name.removeprefix("get_").removesuffix("_publisher")
        return lambda: ServicePublisher(self.bus, service)


class ServiceSubscriber:
    """Handlers per event type on one subscription; ``start()`` subscribes, ``stop()`` ends it."""

    def __init__(self, bus: EventBusService, service: str,
                 event_types: set[str] | None = None) -> None:
        self.bus = bus
        self.service = service
        self.event_types = set(event_types or ())
        self.handlers: dict[str, list[Handler]] = {}
        self.received: list[CloudEvent] = []
        self.subscription_id: str | None = None

    def on(self, event_type: str, handler: Handler) -> None:
        self.handlers.setdefault(str(event_type), []).append(handler)
        self.event_types.add(str(event_type))

    async def _dispatch(self, event: CloudEvent) -> None:
        self.received.append(event)
        for handler in self.handlers.get(event.type, []):
            result = handler(event)
            if hasattr(result, "__await__"):
                await result

    async def start(self) -> str:
        sub = EventSubscription(event_types=self.event_types, queue_group=self.service,
                                durable_name=f"{self.service}_consumer")
        self.subscription_id = await self.bus.subscribe(sub, self._dispatch, self.service)
        return self.subscription_id

    async def stop(self) -> None:
        if self.subscription_id:
            await self.bus.unsubscribe(self.subscription_id)
            self.subscription_id = None


class EventSubscriberFactory:
    """``create_<service>_subscriber()`` for any service name."""

    def __init__(self, bus: EventBusService) -> None:
        self.bus = bus

    def __getattr__(self, name: str) -> Callable[..., ServiceSubscriber]:
        if not (name.startswith("create_") and name.endswith("_subscriber")):
            raise AttributeError(name)
        service = name.removeprefix("create_").removesuffix("_subscriber")
        return lambda event_types=None: ServiceSubscriber(self.bus, service, event_types)
