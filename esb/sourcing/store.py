"""An aggregate owner's storage: version/state records, per-version events and snapshots.

Works on three plain mutable mappings (Faust tables on a worker, dicts in tests), so the owner's
logic is testable without a broker. Keys (strings, identical serializer on topic and tables):

* ``aggregates``: ``aggregate_key(tenant, id)`` -> ``{"aggregate": AggregateState, "snapshots":
  [[version, time], ...]}`` (the snapshot index, oldest first, bounded);
* ``events``: ``event_key(aggregate_key, version)`` -> ``SourcedEvent``;
* ``snapshots``: ``snapshot_key(aggregate_key, version)`` -> ``Snapshot``.

Write order is event, snapshot, then the aggregate record, so a reader that reads the record
first always finds every event up to its version. Only the owner of the aggregate's partition
writes (one agent, one command at a time): that is what makes appends linearizable.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from esb.metrics import SOURCING_APPENDS
from esb.sourcing.append import AppendCommand, AppendDecision, AppendOutcome, decide_append
from esb.sourcing.reconstruct import Reconstruction, reconstruct
from esb.sourcing.records import AggregateState, SourcedEvent
from esb.sourcing.reducers import ReducerRegistry
from esb.sourcing.snapshots import Snapshot, SnapshotPolicy

#: Snapshots kept per aggregate (older ones are deleted); temporal queries before the oldest
#: kept snapshot fold from version 1.
MAX_SNAPSHOTS_KEPT = 16

Table = MutableMapping[str, Any]


def aggregate_key(tenant_id: str, aggregate_id: str) -> str:
    """Tenant names never contain '/', so the split is unambiguous."""
    return f"{tenant_id}/{aggregate_id}"


def event_key(agg_key: str, version: int) -> str:
    return f"{agg_key}#{version}"


def snapshot_key(agg_key: str, version: int) -> str:
    return f"{agg_key}@{version}"


@dataclass(frozen=True, slots=True)
class AggregateRecord:
    aggregate: AggregateState
    snapshots: tuple[tuple[int, datetime | None], ...] = ()

    @property
    def last_snapshot_version(self) -> int:
        return self.snapshots[-1][0] if self.snapshots else 0

    def to_dict(self) -> dict[str, Any]:
        return {"aggregate": self.aggregate.to_dict(),
                "snapshots": [[v, t.isoformat() if t else None] for v, t in self.snapshots]}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> AggregateRecord:
        snapshots = tuple((int(v), datetime.fromisoformat(t) if t else None)
                          for v, t in raw.get("snapshots", ()))
        return cls(AggregateState.from_dict(raw["aggregate"]), snapshots)


@dataclass(frozen=True, slots=True)
class AppendResult:
    """The decision, the event to publish (new or, for a duplicate, the stored original)."""

    decision: AppendDecision
    event: SourcedEvent | None
    snapshot_taken: bool = False


class AggregateStore:
    def __init__(self, aggregates: Table, events: Table, snapshots: Table, *,
                 policy: SnapshotPolicy | None = None,
                 reducers: ReducerRegistry | None = None) -> None:
        self.aggregates = aggregates
        self.events = events
        self.snapshots = snapshots
        self.policy = policy or SnapshotPolicy()
        self.reducers = reducers

    # --- reads --------------------------------------------------------------------------
    def record(self, tenant_id: str, aggregate_id: str) -> AggregateRecord | None:
        raw = self.aggregates.get(aggregate_key(tenant_id, aggregate_id))
        return AggregateRecord.from_dict(raw) if raw is not None else None

    def event(self, tenant_id: str, aggregate_id: str, version: int) -> SourcedEvent | None:
        raw = self.events.get(event_key(aggregate_key(tenant_id, aggregate_id), version))
        return SourcedEvent.from_dict(raw) if raw is not None else None

    def iter_events(self, tenant_id: str, aggregate_id: str, *, after_version: int = 0,
                    to_version: int) -> Iterator[SourcedEvent]:
        """Events ``after_version < v <= to_version`` in order (stops at a missing one)."""
        for version in range(after_version + 1, to_version + 1):
            found = self.event(tenant_id, aggregate_id, version)
            if found is None:
                return
            yield found

    def snapshot(self, tenant_id: str, aggregate_id: str, version: int) -> Snapshot | None:
        raw = self.snapshots.get(snapshot_key(aggregate_key(tenant_id, aggregate_id), version))
        return Snapshot.from_dict(raw) if raw is not None else None

    def reconstruct(self, tenant_id: str, aggregate_id: str, aggregate_type: str, *,
                    as_of_version: int | None = None, as_of_time: datetime | None = None,
                    use_snapshots: bool = True) -> Reconstruction:
        """Latest usable snapshot plus the events after it (all events without snapshots)."""
        record = self.record(tenant_id, aggregate_id)
        if record is None:
            return reconstruct(aggregate_id, aggregate_type, (), reducers=self.reducers,
                               tenant_id=tenant_id)
        current = record.aggregate.version
        base: Snapshot | None = None
        if use_snapshots:
            for version, taken_at in reversed(record.snapshots):
                if as_of_version is not None and version > as_of_version:
                    continue
                if as_of_time is not None and taken_at is not None and taken_at > as_of_time:
                    continue
                base = self.snapshot(tenant_id, aggregate_id, version)
                if base is not None:
                    break
        upto = current if as_of_version is None else min(as_of_version, current)
        events = self.iter_events(tenant_id, aggregate_id,
                                  after_version=base.version if base else 0, to_version=upto)
        return reconstruct(aggregate_id, record.aggregate.aggregate_type, events, snapshot=base,
                           reducers=self.reducers, as_of_version=as_of_version,
                           as_of_time=as_of_time, tenant_id=tenant_id)

    # --- writes (owner only) --------------------------------------------------------------
    def append(self, command: AppendCommand) -> AppendResult:
        """Decide and store; conflicts and duplicates store nothing. Raises on a type mismatch."""
        tenant = command.tenant_id or ""
        key = aggregate_key(tenant, command.aggregate_id)
        record = self.record(tenant, command.aggregate_id)
        decision = decide_append(record.aggregate if record else None, command,
                                 reducers=self.reducers)
        SOURCING_APPENDS.labels(tenant, decision.outcome.value).inc()
        if decision.outcome is AppendOutcome.DUPLICATE:
            return AppendResult(decision, self.event(tenant, command.aggregate_id,
                                                     decision.version))
        if decision.outcome is AppendOutcome.CONFLICT:
            return AppendResult(decision, None)
        event = decision.event
        assert event is not None
        self.events[event_key(key, event.version)] = event.to_dict()
        snapshots = record.snapshots if record else ()
        last_snapshot = snapshots[-1][0] if snapshots else 0
        taken = self.policy.is_due(command.aggregate_type, event.version, last_snapshot)
        if taken:
            snapshots = self._write_snapshot(key, decision.state, snapshots)
        self.aggregates[key] = AggregateRecord(decision.state, snapshots).to_dict()
        return AppendResult(decision, event, taken)

    def take_snapshot(self, tenant_id: str, aggregate_id: str) -> int | None:
        """Snapshot the current state unless the latest snapshot is already at it."""
        record = self.record(tenant_id, aggregate_id)
        if record is None or not record.aggregate.exists:
            return None
        if record.last_snapshot_version == record.aggregate.version:
            return record.aggregate.version
        key = aggregate_key(tenant_id, aggregate_id)
        snapshots = self._write_snapshot(key, record.aggregate, record.snapshots)
        self.aggregates[key] = AggregateRecord(record.aggregate, snapshots).to_dict()
        return record.aggregate.version

    def _write_snapshot(self, key: str, state: AggregateState,
                        snapshots: tuple[tuple[int, datetime | None], ...],
                        ) -> tuple[tuple[int, datetime | None], ...]:
        snap = Snapshot(state.aggregate_id, state.aggregate_type, state.version,
                        dict(state.state), state.last_event_timestamp, state.tenant_id)
        self.snapshots[snapshot_key(key, state.version)] = snap.to_dict()
        kept = (*snapshots, (state.version, state.last_event_timestamp))
        for version, _ in kept[:-MAX_SNAPSHOTS_KEPT]:
            self.snapshots.pop(snapshot_key(key, version), None)
        return kept[-MAX_SNAPSHOTS_KEPT:]
