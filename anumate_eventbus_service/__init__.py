"""Seed 003's event bus client names over the bus's API (``ESB_URL`` / ``ESB_TOKEN``)."""

from anumate_eventbus_service.config import EventBusConfig
from anumate_eventbus_service.factories import (
    EventPublisherFactory,
    EventSubscriberFactory,
    ServicePublisher,
    ServiceSubscriber,
)
from anumate_eventbus_service.models import CloudEvent, EventContext, EventSubscription, EventType
from anumate_eventbus_service.service import EventBusService

__all__ = [
    "CloudEvent", "EventBusConfig", "EventBusService", "EventContext", "EventPublisherFactory",
    "EventSubscriberFactory", "EventSubscription", "EventType", "ServicePublisher",
    "ServiceSubscriber",
]
