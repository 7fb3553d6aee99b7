"""Event-sourcing configuration (``ESB_SOURCING_*``) and the default stream of an aggregate type.

* ``ESB_SOURCING_SNAPSHOT_EVERY``: snapshot every N events (default 100, 0 = never);
* ``ESB_SOURCING_SNAPSHOT_POLICY``: per-type overrides as JSON, e.g. ``{"Order": 20}``;
* ``ESB_SOURCING_COMMAND_TIMEOUT_S``: how long a request waits for the owner's decision.

Where an accepted event is published: the request's ``stream_id`` if given, else the aggregate
type's default stream ``es-<type>`` (lowercased, other characters folded to ``-``), created on
first use. So all events of one aggregate type land in one stream unless a writer says otherwise.
"""

from __future__ import annotations

import re

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from esb.sourcing.snapshots import DEFAULT_SNAPSHOT_EVERY, SnapshotPolicy

_NOT_NAME = re.compile(r"[^a-z0-9_-]+")


class SourcingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ESB_SOURCING_", frozen=True, extra="ignore")

    snapshot_every: int = Field(DEFAULT_SNAPSHOT_EVERY, ge=0)
    snapshot_policy: dict[str, int] = Field(default_factory=dict)
    command_timeout_s: float = Field(15.0, gt=0)

    def policy(self) -> SnapshotPolicy:
        return SnapshotPolicy(self.snapshot_every, dict(self.snapshot_policy))


def default_stream_name(aggregate_type: str) -> str:
    """``es-<type>``: a valid stream name (``[a-z0-9][a-z0-9_-]{0,62}``) for any type name."""
    slug = _NOT_NAME.sub("-", aggregate_type.lower()).strip("-") or "aggregate"
    return f"es-{slug}"[:63].rstrip("-")
