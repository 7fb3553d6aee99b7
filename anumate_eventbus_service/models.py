"""Seed 003's CloudEvent, event types, subscription and context models."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from esb import ids


class EventType(StrEnum):
    CAPSULE_CREATED = "com.anumate.capsule.created"
    CAPSULE_UPDATED = "com.anumate.capsule.updated"
    CAPSULE_DELETED = "com.anumate.capsule.deleted"
    CAPSULE_PUBLISHED = "com.anumate.capsule.published"
    POLICY_CREATED = "com.anumate.policy.created"
    POLICY_UPDATED = "com.anumate.policy.updated"
    POLICY_VIOLATED = "com.anumate.policy.violated"
    POLICY_ENFORCED = "com.anumate.policy.enforced"
    EXECUTION_STARTED = "com.anumate.execution.started"
    EXECUTION_COMPLETED = "com.anumate.execution.completed"
    EXECUTION_FAILED = "com.anumate.execution.failed"
    EXECUTION_PAUSED = "com.anumate.execution.paused"
    APPROVAL_REQUESTED = "com.anumate.approval.requested"
    APPROVAL_GRANTED = "com.anumate.approval.granted"
    APPROVAL_REJECTED = "com.anumate.approval.rejected"


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event; extension attributes (``tenantid``, ``correlationid`` …) are
    extra fields. ``id`` and ``time`` are filled in at construction, like the seed's."""

    model_config = ConfigDict(extra="allow", use_enum_values=True)

    specversion: str = "1.0"
    id: str = Field(default_factory=ids.event_id)
    source: str
    type: str
    subject: str | None = None
    time: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z"))
    datacontenttype: str = "application/json"
    data: Any = None

    def to_structured(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    @classmethod
    def from_sdk(cls, event: Any) -> CloudEvent:
        """From the CloudEvents SDK's event (``cloudevents.v1.http.CloudEvent``)."""
        return cls(**event.get_attributes(), data=event.data)


@dataclass(slots=True)
class EventSubscription:
    """Which events a handler gets. With broker access (``EventBusConfig.kafka_bootstrap``)
    ``durable_name`` (else ``queue_group``) names a Kafka consumer group: members share the
    work and resume after their last handled event. Over the WebSocket fallback every
    subscriber sees every matching event from the moment it subscribes: the two names are
    recorded but not enforced there; see docs/sdk.md."""

    event_types: set[str] = field(default_factory=set)
    queue_group: str | None = None
    durable_name: str | None = None
    tenant_id: str | None = None
    subject_filter: str | None = None

    def matches(self, event: CloudEvent) -> bool:
        if self.event_types and event.type not in {str(t) for t in self.event_types}:
            return False
        tenant = getattr(event, "tenantid", None)
        return self.tenant_id is None or tenant in (None, self.tenant_id)


@dataclass(slots=True)
class EventContext:
    """Who and why: becomes the CloudEvent's ``tenantid``/``correlationid``/… extensions."""

    tenant_id: str | None = None
    correlation_id: str | None = None
    user_id: str | None = None
    causation_id: str | None = None
    trace_id: str | None = None

    def extensions(self) -> dict[str, str]:
        names = {"tenant_id": "tenantid", "correlation_id": "correlationid",
                 "user_id": "userid", "causation_id": "causationid", "trace_id": "traceid"}
        return {ext: value for attr, ext in names.items()
                if (value := getattr(self, attr)) is not None}
