"""The archived event: one row of the read side's ``events`` table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from esb.errors import InvalidRequest
from esb.sourcing.records import SourcedEvent

ARCHIVE_COLUMNS = (
    "tenant_id", "event_id", "stream_id", "stream_name", "event_type", "event_version", "source",
    "aggregate_id", "aggregate_type", "sequence_number", "correlation_id", "causation_id",
    "user_id", "priority", "schema_version", "time", "payload", "metadata", "topic",
    "partition", "offset",
)


class ArchivedEvent(BaseModel):
    """An event as the archive keeps it (seed "Core Event Structure" plus log position)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    tenant_id: str = Field(min_length=1)
    event_id: str = Field(min_length=1)
    event_type: str = Field(min_length=1)
    time: AwareDatetime
    stream_id: str | None = None
    stream_name: str | None = None
    event_version: str | None = None
    source: str | None = None
    aggregate_id: str | None = None
    aggregate_type: str | None = None
    sequence_number: int | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    user_id: str | None = None
    priority: str | None = None
    schema_version: str | None = None
    payload: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    archived_at: datetime | None = None  # set by the database

    def to_seed_dict(self) -> dict[str, Any]:
        """The public JSON shape (seed 002 field names), as ``GET /events/{id}`` answers."""
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "event_version": self.event_version,
            "source_capability": self.source,
            "aggregate_id": self.aggregate_id,
            "aggregate_type": self.aggregate_type,
            "sequence_number": self.sequence_number,
            "timestamp": self.time.isoformat().replace("+00:00", "Z"),
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "tenant_id": self.tenant_id,
            "user_id": self.user_id,
            "metadata": self.metadata,
            "payload": self.payload,
            "schema_version": self.schema_version,
            "stream_id": self.stream_id,
            "stream_name": self.stream_name,
            "priority": self.priority,
        }

    def to_sourced_event(self) -> SourcedEvent:
        """This event as a step of its aggregate's stream, for reconstruction from the archive."""
        if self.aggregate_id is None or self.aggregate_type is None or self.sequence_number is None:
            raise InvalidRequest(f"event {self.event_id!r} is not an event-sourced event",
                                 event_id=self.event_id)
        return SourcedEvent(
            event_id=self.event_id,
            aggregate_id=self.aggregate_id,
            aggregate_type=self.aggregate_type,
            event_type=self.event_type,
            version=self.sequence_number,
            timestamp=self.time,
            data=self.payload if isinstance(self.payload, dict) else {},
            tenant_id=self.tenant_id,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
            user_id=self.user_id,
            metadata=self.metadata,
        )
