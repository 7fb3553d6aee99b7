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


def method_for(event_type: str) -> str | None:
    """``com.anumate.capsule.created`` -> ``publish_capsule_created`` (None: not an Anumate type)."""
    if not event_type.startswith(TYPE_ROOT):
        return None
    noun, _, verb = event_type.removeprefix(TYPE_ROOT).rpartition(".")
    return f"publish_{noun.replace('.', '_')}_{verb}" if noun and verb else None


class ServicePublisher:
    """``publish_<noun>_<verb>(context=None, **data)`` for every event type; with ``known``
    (the registry's types, :meth:`EventPublisherFactory.load_event_types`) only for those, so
    a misspelt method fails at once instead of publishing an event type nobody consumes."""

    def __init__(self, bus: EventBusService, service: str,
                 known: frozenset[str] | None = None) -> None:
        self.bus = bus
        self.service = service
        self.source = SOURCE_ROOT + service
        self.known = known

    def __dir__(self) -> list[str]:
        methods = {method_for(t) for t in self.known or ()}
        return sorted({*super().__dir__(), *(m for m in methods if m)})

    async def publish(self, event_type: str, data: dict[str, Any],
                      context: EventContext | None = None, subject: str | None = None) -> str:
        event = CloudEvent(type=event_type, source=self.source, subject=subject, data=data,
                           **(context.extensions() if context else {}))
        return await self.bus.publish_event(event)

    def __getattr__(self, name: str) -> Callable[..., Awaitable[str]]:
        if not name.startswith("publish_"):
            raise AttributeError(name)
        if self.known is None:
            event_type = event_type_for(name)
        else:
            by_method = {method_for(t): t for t in self.known}
            if name not in by_method:
                raise AttributeError(f"{name}: no such event type in the schema registry "
                                     f"(known: {', '.join(sorted(self.known))})")
            event_type = by_method[name]

        async def publish(context: EventContext | None = None, **data: Any) -> str:
            return await self.publish(event_type, data, context)

        publish.__name__ = name
        return publish


class EventPublisherFactory:
    """``get_<service>_publisher()`` for any service name. After :meth:`load_event_types` its
    publishers offer exactly the ``com.anumate.*`` event types the schema registry holds."""

    def __init__(self, bus: EventBusService) -> None:
        self.bus = bus
        self.known: frozenset[str] | None = None

    async def load_event_types(self) -> frozenset[str]:
        """The tenant's registered ``com.anumate.*`` event types (the bus's ``GET /schemas``)."""
        schemas = await self.bus.client.list_schemas()
        self.known = frozenset(s["event_type"] for s in schemas
                               if method_for(str(s.get("event_type", ""))))
        return self.known

    def __getattr__(self, name: str) -> Callable[[], ServicePublisher]:
        if not (name.startswith("get_") and name.endswith("_publisher")):
            raise AttributeError(name)
        service = name.removeprefix("get_").removesuffix("_publisher")
        return lambda: ServicePublisher(self.bus, service, self.known)


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
