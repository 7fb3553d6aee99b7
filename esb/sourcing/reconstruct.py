"""Rebuilding aggregate state from an optional snapshot and the events after it.

Also answers temporal queries: the state as of a version, or as of a time. "As of time T"
is the state after every event with ``timestamp <= T``; appends keep timestamps
non-decreasing per aggregate (see :func:`esb.sourcing.append.decide_append`), so those
events form a prefix of the stream and a snapshot taken at or before T can be used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from esb.errors import EsbError, ValidationFailed
from esb.sourcing.records import AggregateState, SourcedEvent
from esb.sourcing.reducers import ReducerRegistry, shared_registry
from esb.sourcing.snapshots import Snapshot


class StreamGap(EsbError):
    """The events handed to reconstruction skip a version: the store is inconsistent."""

    code = "event_stream_gap"


@dataclass(frozen=True, slots=True)
class Reconstruction:
    aggregate_id: str
    aggregate_type: str
    current_version: int
    state: Mapping[str, Any]
    last_event_timestamp: datetime | None
    snapshot_version: int | None
    events_applied: int
    tenant_id: str | None = None

    @property
    def exists(self) -> bool:
        return self.current_version > 0

    def to_snapshot(self) -> Snapshot:
        return Snapshot(self.aggregate_id, self.aggregate_type, self.current_version,
                        dict(self.state), self.last_event_timestamp, self.tenant_id)

    def to_aggregate_state(self) -> AggregateState:
        """A state record to seed an owner's table (recent event ids are not recoverable)."""
        return AggregateState(self.aggregate_id, self.aggregate_type, self.current_version,
                              dict(self.state), self.last_event_timestamp, self.tenant_id)


def reconstruct(
    aggregate_id: str,
    aggregate_type: str,
    events: Iterable[SourcedEvent],
    *,
    snapshot: Snapshot | None = None,
    reducers: ReducerRegistry | None = None,
    as_of_version: int | None = None,
    as_of_time: datetime | None = None,
    tenant_id: str | None = None,
) -> Reconstruction:
    """Fold ``events`` (in version order) onto ``snapshot`` or onto empty state.

    Events at or below the snapshot's version are skipped, so passing the whole stream is
    fine. A snapshot beyond the requested point is ignored; then ``events`` must start at
    version 1. A missing version raises :class:`StreamGap`.
    """
    if as_of_version is not None and as_of_time is not None:
        raise ValidationFailed(
            "give as_of_version or as_of_time, not both",
            errors=[{"path": "as_of_version", "message": "conflicts with as_of_time"}],
        )
    if as_of_version is not None and as_of_version < 0:
        raise ValidationFailed("as_of_version must be >= 0",
                               errors=[{"path": "as_of_version", "message": "must be >= 0"}])
    registry = reducers if reducers is not None else shared_registry()

    base = snapshot if snapshot is not None and snapshot.usable_for(
        as_of_version=as_of_version, as_of_time=as_of_time) else None
    version = base.version if base else 0
    state: Mapping[str, Any] = dict(base.state) if base else {}
    last_time = base.timestamp if base else None
    applied = 0

    for event in events:
        if event.version <= version:
            continue
        if event.version != version + 1:
            raise StreamGap(
                f"aggregate {aggregate_id!r}: expected version {version + 1}, "
                f"got {event.version}",
                aggregate_id=aggregate_id, expected_version=version + 1,
                found_version=event.version,
            )
        if as_of_version is not None and event.version > as_of_version:
            break
        if as_of_time is not None and event.timestamp > as_of_time:
            break
        state = registry.apply(aggregate_type, state, event)
        version = event.version
        last_time = event.timestamp
        applied += 1

    return Reconstruction(
        aggregate_id=aggregate_id,
        aggregate_type=aggregate_type,
        current_version=version,
        state=state,
        last_event_timestamp=last_time,
        snapshot_version=base.version if base else None,
        events_applied=applied,
        tenant_id=tenant_id,
    )
