"""The records event sourcing works on: a sourced event and an aggregate's state record.

Both are plain frozen dataclasses with ``to_dict``/``from_dict`` to JSON-safe dicts, so a Faust
table (or any store) can keep them without knowing this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def _time_to_wire(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _time_from_wire(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


@dataclass(frozen=True, slots=True)
class SourcedEvent:
    """One event of an aggregate's stream; ``version`` is its position (1-based)."""

    event_id: str
    aggregate_id: str
    aggregate_type: str
    event_type: str
    version: int
    timestamp: datetime
    data: Mapping[str, Any]
    tenant_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    user_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "aggregate_id": self.aggregate_id,
            "aggregate_type": self.aggregate_type,
            "event_type": self.event_type,
            "version": self.version,
            "timestamp": _time_to_wire(self.timestamp),
            "data": dict(self.data),
            "tenant_id": self.tenant_id,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "user_id": self.user_id,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SourcedEvent:
        timestamp = _time_from_wire(raw["timestamp"])
        assert timestamp is not None
        return cls(
            event_id=raw["event_id"],
            aggregate_id=raw["aggregate_id"],
            aggregate_type=raw["aggregate_type"],
            event_type=raw["event_type"],
            version=int(raw["version"]),
            timestamp=timestamp,
            data=raw.get("data") or {},
            tenant_id=raw.get("tenant_id"),
            correlation_id=raw.get("correlation_id"),
            causation_id=raw.get("causation_id"),
            user_id=raw.get("user_id"),
            metadata=raw.get("metadata") or {},
        )


@dataclass(frozen=True, slots=True)
class AggregateState:
    """What the owner of an aggregate keeps: version, folded state and recent event ids.

    ``recent_event_ids`` holds ``(event_id, version)`` pairs, oldest first, bounded by the
    ``recent_ids_limit`` given to :func:`esb.sourcing.append.decide_append`: an append retried
    after more than that many newer events is no longer recognised as a duplicate.
    """

    aggregate_id: str
    aggregate_type: str
    version: int = 0
    state: Mapping[str, Any] = field(default_factory=dict)
    last_event_timestamp: datetime | None = None
    tenant_id: str | None = None
    recent_event_ids: tuple[tuple[str, int], ...] = ()

    @property
    def exists(self) -> bool:
        return self.version > 0

    def version_of(self, event_id: str) -> int | None:
        """The version an already-appended event got, if it is still remembered."""
        for known_id, version in reversed(self.recent_event_ids):
            if known_id == event_id:
                return version
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "aggregate_id": self.aggregate_id,
            "aggregate_type": self.aggregate_type,
            "version": self.version,
            "state": dict(self.state),
            "last_event_timestamp": _time_to_wire(self.last_event_timestamp),
            "tenant_id": self.tenant_id,
            "recent_event_ids": [list(pair) for pair in self.recent_event_ids],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> AggregateState:
        return cls(
            aggregate_id=raw["aggregate_id"],
            aggregate_type=raw["aggregate_type"],
            version=int(raw.get("version", 0)),
            state=raw.get("state") or {},
            last_event_timestamp=_time_from_wire(raw.get("last_event_timestamp")),
            tenant_id=raw.get("tenant_id"),
            recent_event_ids=tuple(
                (str(event_id), int(version))
                for event_id, version in raw.get("recent_event_ids", ())
            ),
        )
