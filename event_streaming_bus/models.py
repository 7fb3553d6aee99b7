"""The seeds' (000/001) configuration models and enums, as the bus's API spells them."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# the server's own enums where the seed's are the same (one definition, no drift)
from esb.delivery.models import DeliveryMode
from esb.processing.models import ProcessorType
from esb.topics import Priority as EventPriority

__all__ = ["CompressionType", "DeliveryMode", "EventConfig", "EventPriority", "ProcessorType",
           "SerializationFormat", "StreamConfig", "SubscriptionConfig", "as_body"]


class CompressionType(StrEnum):
    NONE = "NONE"
    GZIP = "GZIP"
    SNAPPY = "SNAPPY"
    LZ4 = "LZ4"
    ZSTD = "ZSTD"


class SerializationFormat(StrEnum):
    JSON = "JSON"
    AVRO = "AVRO"
    PROTOBUF = "PROTOBUF"


class _Config(BaseModel):
    """Seed configs are plain bags of API fields: unknown ones are passed through, and the
    server (which forbids unknown fields) is the one that says which are wrong."""

    model_config = ConfigDict(extra="allow", use_enum_values=True)

    def api_body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class StreamConfig(_Config):
    stream_name: str
    topic_name: str | None = None
    source_capability: str | None = None
    partitions: int = 6
    replication_factor: int = 1
    compression_type: CompressionType = CompressionType.NONE
    default_serialization: SerializationFormat = SerializationFormat.JSON
    retention_time_ms: int | None = None
    event_types: list[str] = Field(default_factory=list)


class EventConfig(_Config):
    event_type: str
    source_capability: str
    aggregate_id: str | None = None
    aggregate_type: str | None = None
    priority: EventPriority = EventPriority.NORMAL
    compression_type: CompressionType | None = None
    serialization_format: SerializationFormat | None = None
    schema_id: str | None = None
    schema_version: str | None = None
    event_version: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    max_retries: int | None = None
    partition_key: str | None = None


class SubscriptionConfig(_Config):
    subscription_name: str
    stream_id: str
    consumer_group_id: str
    consumer_name: str | None = None
    event_type_patterns: list[str] = Field(default_factory=lambda: ["*"])
    delivery_mode: DeliveryMode = DeliveryMode.AT_LEAST_ONCE
    batch_size: int = 1
    max_wait_time_ms: int = 1000
    webhook_url: str | None = None
    webhook_timeout_ms: int | None = None
    dead_letter_enabled: bool | None = None
    retry_policy: dict[str, Any] | None = None


def as_body(config: BaseModel | dict[str, Any]) -> dict[str, Any]:
    """A seed config (model or dict) as a JSON body; enum members become their values."""
    if isinstance(config, _Config):
        return config.api_body()
    if isinstance(config, BaseModel):
        return config.model_dump(mode="json", exclude_none=True)
    return {k: (v.value if isinstance(v, StrEnum) else v) for k, v in config.items()}
