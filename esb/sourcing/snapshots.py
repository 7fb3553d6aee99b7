"""Snapshots of aggregate state and the policy that says when to take one.

A snapshot is the folded state at a version, so reconstruction folds only the events after it.
The policy is "every N events" per aggregate type (default 100; 0 disables snapshots).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from esb.errors import ConfigurationError

DEFAULT_SNAPSHOT_EVERY = 100


@dataclass(frozen=True, slots=True)
class Snapshot:
    """State after ``version``; ``timestamp`` is that version's event time."""

    aggregate_id: str
    aggregate_type: str
    version: int
    state: Mapping[str, Any]
    timestamp: datetime | None
    tenant_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "aggregate_id": self.aggregate_id,
            "aggregate_type": self.aggregate_type,
            "version": self.version,
            "state": dict(self.state),
            "timestamp": self.timestamp.isoformat() if self.timestamp else None,
            "tenant_id": self.tenant_id,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Snapshot:
        timestamp = raw.get("timestamp")
        return cls(
            aggregate_id=raw["aggregate_id"],
            aggregate_type=raw["aggregate_type"],
            version=int(raw["version"]),
            state=raw.get("state") or {},
            timestamp=(datetime.fromisoformat(timestamp) if isinstance(timestamp, str)
                       else timestamp),
            tenant_id=raw.get("tenant_id"),
        )

    def usable_for(self, *, as_of_version: int | None = None,
                   as_of_time: datetime | None = None) -> bool:
        """Whether this snapshot lies at or before the requested point in the stream."""
        if as_of_version is not None and self.version > as_of_version:
            return False
        return not (
            as_of_time is not None and self.timestamp is not None and self.timestamp > as_of_time
        )


@dataclass(frozen=True, slots=True)
class SnapshotPolicy:
    """Take a snapshot every ``interval(type)`` events; per-type overrides the default."""

    default_every: int = DEFAULT_SNAPSHOT_EVERY
    per_type: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, every in {"default": self.default_every, **self.per_type}.items():
            if isinstance(every, bool) or not isinstance(every, int) or every < 0:
                raise ConfigurationError(
                    f"snapshot interval for {name!r} must be an integer >= 0 (0 = never)"
                )

    def interval(self, aggregate_type: str) -> int:
        return self.per_type.get(aggregate_type, self.default_every)

    def is_due(self, aggregate_type: str, version: int, last_snapshot_version: int = 0) -> bool:
        every = self.interval(aggregate_type)
        return every > 0 and version - last_snapshot_version >= every


def choose_snapshot(
    snapshots: Iterable[Snapshot],
    *,
    as_of_version: int | None = None,
    as_of_time: datetime | None = None,
) -> Snapshot | None:
    """The latest snapshot usable for the requested point (None when none is)."""
    usable = [s for s in snapshots if s.usable_for(as_of_version=as_of_version,
                                                    as_of_time=as_of_time)]
    return max(usable, key=lambda s: s.version, default=None)
