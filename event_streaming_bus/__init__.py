"""Seeds 000/001's Python SDK names over the bus's API (``ESB_URL`` / ``ESB_TOKEN``)."""

from esb.sdk import EsbClient, SyncEsbClient, VersionConflict
from event_streaming_bus.models import (
    CompressionType,
    DeliveryMode,
    EventConfig,
    EventPriority,
    ProcessorType,
    SerializationFormat,
    StreamConfig,
    SubscriptionConfig,
)
from event_streaming_bus.services import (
    APGEventStreamingIntegration,
    ConsumerManagementService,
    EventConsumptionService,
    EventPublishingService,
    EventSourcingService,
    EventStreamingService,
    SchemaRegistryService,
    StreamManagementService,
    StreamProcessingService,
)

__all__ = [
    "APGEventStreamingIntegration", "CompressionType", "ConsumerManagementService",
    "DeliveryMode", "EsbClient", "EventConfig", "EventConsumptionService",
    "EventPriority", "EventPublishingService", "EventSourcingService", "EventStreamingService",
    "ProcessorType", "SchemaRegistryService", "SerializationFormat", "StreamConfig",
    "StreamManagementService", "StreamProcessingService", "SubscriptionConfig", "SyncEsbClient",
    "VersionConflict",
]
