"""Event sourcing logic, free of Faust and storage: versions, appends, reducers, snapshots.

The owner of an aggregate's partition calls :func:`decide_append`; reads call
:func:`reconstruct`. Both are pure functions over the records in :mod:`.records`.
"""

from __future__ import annotations

from esb.sourcing.append import (
    DEFAULT_RECENT_IDS_LIMIT,
    AppendCommand,
    AppendDecision,
    AppendOutcome,
    decide_append,
)
from esb.sourcing.models import (
    AppendRequest,
    AppendResponse,
    ReconstructRequest,
    ReconstructResponse,
)
from esb.sourcing.reconstruct import Reconstruction, StreamGap, reconstruct
from esb.sourcing.records import AggregateState, SourcedEvent
from esb.sourcing.reducers import (
    ENTRY_POINT_GROUP,
    Reducer,
    ReducerRegistry,
    default_registry,
    merge_patch,
    merge_reducer,
    shared_registry,
)
from esb.sourcing.snapshots import DEFAULT_SNAPSHOT_EVERY, Snapshot, SnapshotPolicy, choose_snapshot
from esb.sourcing.versions import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    ExpectedVersion,
    ExpectedVersionKind,
)

__all__ = [
    "ANY",
    "DEFAULT_RECENT_IDS_LIMIT",
    "DEFAULT_SNAPSHOT_EVERY",
    "ENTRY_POINT_GROUP",
    "NO_STREAM",
    "STREAM_EXISTS",
    "AggregateState",
    "AppendCommand",
    "AppendDecision",
    "AppendOutcome",
    "AppendRequest",
    "AppendResponse",
    "ExpectedVersion",
    "ExpectedVersionKind",
    "ReconstructRequest",
    "ReconstructResponse",
    "Reconstruction",
    "Reducer",
    "ReducerRegistry",
    "Snapshot",
    "SnapshotPolicy",
    "SourcedEvent",
    "StreamGap",
    "choose_snapshot",
    "decide_append",
    "default_registry",
    "merge_patch",
    "merge_reducer",
    "reconstruct",
    "shared_registry",
]
