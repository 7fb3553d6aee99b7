"""Commands sent to an aggregate's owner over the co-partitioned command topic (JSON).

``append`` carries an :class:`AppendCommand` plus where to publish the accepted event;
``snapshot`` asks the owner to snapshot the aggregate's current state. ``command_id`` lets the
worker that produced the command complete its waiting request; the event id makes a retried
command idempotent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from esb.observability.sourcing import trace_carrier
from esb.sourcing.append import AppendCommand
from esb.sourcing.versions import ExpectedVersion

CommandKind = Literal["append", "snapshot"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where the owner publishes an accepted event: the stream's lane topic and codec."""

    topic: str
    stream_name: str
    codec: str | None = None
    priority: str = "NORMAL"
    source: str = "event-sourcing"

    def to_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "stream_name": self.stream_name, "codec": self.codec,
                "priority": self.priority, "source": self.source}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Delivery:
        return cls(raw["topic"], raw["stream_name"], raw.get("codec"),
                   raw.get("priority") or "NORMAL", raw.get("source") or "event-sourcing")


@dataclass(frozen=True, slots=True)
class OwnerCommand:
    kind: CommandKind
    command_id: str
    tenant_id: str
    aggregate_id: str
    append: AppendCommand | None = None
    delivery: Delivery | None = None
    #: the requesting span's W3C ``traceparent``/``tracestate`` (ADR 0019); empty when untraced
    trace: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "command_id": self.command_id,
                               "tenant_id": self.tenant_id, "aggregate_id": self.aggregate_id}
        if self.append is not None:
            out["append"] = append_to_dict(self.append)
        if self.delivery is not None:
            out["delivery"] = self.delivery.to_dict()
        if self.trace:
            out["trace"] = dict(self.trace)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> OwnerCommand:
        return cls(
            kind=raw["kind"], command_id=raw["command_id"], tenant_id=raw["tenant_id"],
            aggregate_id=raw["aggregate_id"],
            append=append_from_dict(raw["append"]) if raw.get("append") else None,
            delivery=Delivery.from_dict(raw["delivery"]) if raw.get("delivery") else None,
            trace=trace_carrier(raw.get("trace")),
        )


def append_to_dict(command: AppendCommand) -> dict[str, Any]:
    return {
        "event_id": command.event_id, "aggregate_id": command.aggregate_id,
        "aggregate_type": command.aggregate_type, "event_type": command.event_type,
        "data": dict(command.data), "timestamp": command.timestamp.isoformat(),
        "expected_version": command.expected_version.to_wire(), "tenant_id": command.tenant_id,
        "correlation_id": command.correlation_id, "causation_id": command.causation_id,
        "user_id": command.user_id, "metadata": dict(command.metadata),
    }


def append_from_dict(raw: Mapping[str, Any]) -> AppendCommand:
    return AppendCommand(
        event_id=raw["event_id"], aggregate_id=raw["aggregate_id"],
        aggregate_type=raw["aggregate_type"], event_type=raw["event_type"],
        data=raw.get("data") or {}, timestamp=datetime.fromisoformat(raw["timestamp"]),
        expected_version=ExpectedVersion.parse(raw.get("expected_version")),
        tenant_id=raw.get("tenant_id"), correlation_id=raw.get("correlation_id"),
        causation_id=raw.get("causation_id"), user_id=raw.get("user_id"),
        metadata=raw.get("metadata") or {},
    )
