"""Deciding an append: version check, idempotency by event id, and the fold into new state.

This runs on the one worker that owns the aggregate's partition, so deciding and storing the
result are serial per aggregate (DESIGN.md "Concurrency in event sourcing"). It is pure: the
caller stores ``decision.state`` and publishes ``decision.event`` when accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from esb.errors import Conflict, VersionConflict
from esb.sourcing.records import AggregateState, SourcedEvent
from esb.sourcing.reducers import ReducerRegistry, shared_registry
from esb.sourcing.versions import ANY, ExpectedVersion

# How many recent event ids each aggregate remembers for idempotent retries. A retry is
# recognised while fewer than this many newer events were appended to the same aggregate.
DEFAULT_RECENT_IDS_LIMIT = 100


@dataclass(frozen=True, slots=True)
class AppendCommand:
    """A request to append one event, with its id and time already assigned by the caller."""

    event_id: str
    aggregate_id: str
    aggregate_type: str
    event_type: str
    data: Mapping[str, Any]
    timestamp: datetime
    expected_version: ExpectedVersion = ANY
    tenant_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    user_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


class AppendOutcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # this event id was already appended; nothing changes
    CONFLICT = "conflict"    # expected version not met; nothing changes


@dataclass(frozen=True, slots=True)
class AppendDecision:
    """The outcome; ``version`` is the new, original (duplicate) or current (conflict) version."""

    outcome: AppendOutcome
    version: int
    event_id: str
    state: AggregateState
    event: SourcedEvent | None = None
    conflict: VersionConflict | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome is AppendOutcome.ACCEPTED

    @property
    def succeeded(self) -> bool:
        """Accepted now or earlier: the caller should answer success either way."""
        return self.outcome is not AppendOutcome.CONFLICT

    def raise_for_conflict(self) -> AppendDecision:
        if self.conflict is not None:
            raise self.conflict
        return self


def decide_append(
    aggregate_state: AggregateState | None,
    command: AppendCommand,
    *,
    reducers: ReducerRegistry | None = None,
    recent_ids_limit: int = DEFAULT_RECENT_IDS_LIMIT,
) -> AppendDecision:
    """Accept, recognise as duplicate, or reject ``command`` against the aggregate's state.

    The duplicate check comes first, so a retried append answers its original version even if
    its expected version no longer holds. Event timestamps never go backwards within an
    aggregate (a command time earlier than the last event's is raised to it), so temporal
    queries fold a prefix of the stream. A type mismatch with an existing aggregate is a
    :class:`~esb.errors.Conflict` (raised, not returned: it is a client error, not a race).
    """
    current = aggregate_state or AggregateState(
        aggregate_id=command.aggregate_id,
        aggregate_type=command.aggregate_type,
        tenant_id=command.tenant_id,
    )
    _check_identity(current, command)

    original_version = current.version_of(command.event_id)
    if original_version is not None:
        return AppendDecision(AppendOutcome.DUPLICATE, original_version, command.event_id, current)

    if not command.expected_version.is_satisfied_by(current.version):
        conflict = VersionConflict(
            f"aggregate {command.aggregate_id!r} is at version {current.version}, "
            f"expected {command.expected_version}",
            current_version=current.version,
            expected_version=command.expected_version.to_wire(),
            aggregate_id=command.aggregate_id,
        )
        return AppendDecision(AppendOutcome.CONFLICT, current.version, command.event_id, current,
                              conflict=conflict)

    registry = reducers if reducers is not None else shared_registry()
    event = SourcedEvent(
        event_id=command.event_id,
        aggregate_id=command.aggregate_id,
        aggregate_type=command.aggregate_type,
        event_type=command.event_type,
        version=current.version + 1,
        timestamp=_monotonic_time(current, command.timestamp),
        data=command.data,
        tenant_id=command.tenant_id,
        correlation_id=command.correlation_id,
        causation_id=command.causation_id,
        user_id=command.user_id,
        metadata=command.metadata,
    )
    recent = (*current.recent_event_ids, (event.event_id, event.version))
    if recent_ids_limit >= 0:
        recent = recent[max(0, len(recent) - recent_ids_limit):]
    new_state = replace(
        current,
        version=event.version,
        state=registry.apply(command.aggregate_type, current.state, event),
        last_event_timestamp=event.timestamp,
        tenant_id=current.tenant_id or command.tenant_id,
        recent_event_ids=recent,
    )
    return AppendDecision(AppendOutcome.ACCEPTED, event.version, event.event_id, new_state,
                          event=event)


def _monotonic_time(current: AggregateState, requested: datetime) -> datetime:
    """Never earlier than the previous event, so "state as of time T" is a stream prefix."""
    last = current.last_event_timestamp
    return last if last is not None and last > requested else requested


def _check_identity(current: AggregateState, command: AppendCommand) -> None:
    if current.exists and current.aggregate_type != command.aggregate_type:
        raise Conflict(
            f"aggregate {command.aggregate_id!r} is of type {current.aggregate_type!r}, "
            f"not {command.aggregate_type!r}",
            aggregate_id=command.aggregate_id,
            aggregate_type=current.aggregate_type,
        )
    if current.aggregate_id != command.aggregate_id or (
        current.tenant_id and command.tenant_id and current.tenant_id != command.tenant_id
    ):
        raise Conflict("aggregate state does not belong to this command's aggregate",
                       aggregate_id=command.aggregate_id)
