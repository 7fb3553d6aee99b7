"""Seed 003's REST surface (``POST /events/publish?source=…``) mapped onto the seed-000 publish.

The Anumate body ``{"event_type", "data", "tenant_id"}`` becomes an :class:`esb.envelope.EventIn`
for the tenant's default stream (``ANUMATE_EVENTS``, bus name ``anumate_events``), so it goes
through the one publish path (validation, tenancy, schema checks, limits). The stream is created
on first use, as the seed's service does, instead of demanding a setup step.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from esb.errors import AlreadyExists
from esb.streams import StreamCreate, StreamService

#: the seed's ``STREAM_NAME`` default, as a bus stream name (lowercase)
DEFAULT_STREAM = "anumate_events"
DEFAULT_SOURCE = "anumate"


class AnumatePublishIn(BaseModel):
    """Seed 003's publish body; ``source`` comes from the query string."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    event_type: str = Field(..., min_length=1, max_length=256)
    data: Any = Field(default_factory=dict)
    tenant_id: str | None = None


def to_event_in(body: AnumatePublishIn, source: str) -> dict[str, Any]:
    """The seed-000 body the Anumate request means (validated by ``EventIn`` afterwards, so the
    event type pattern and the source's limits are the publish path's own)."""
    return {"event_type": body.event_type, "source_capability": source, "payload": body.data,
            "tenant_id": body.tenant_id, "stream_name": DEFAULT_STREAM}


#: ``EventIn`` fields as the Anumate request names them (for 422 paths the caller recognises)
SEED_NAMES = {"source_capability": "source", "payload": "data"}


async def ensure_stream(streams: StreamService, *, tenant: str, user: str) -> dict[str, Any]:
    """The tenant's Anumate stream, created on first use (a concurrent creator wins quietly)."""
    found = streams.directory.get(tenant, DEFAULT_STREAM)
    if found is not None:
        return found
    with contextlib.suppress(AlreadyExists):
        return await streams.create(
            StreamCreate(stream_name=DEFAULT_STREAM, source_capability=DEFAULT_SOURCE,
                         event_types=["com.anumate.*"],
                         description="Seed 003's default stream (created on first use)"),
            tenant=tenant, user=user)
    return await streams.get(tenant, DEFAULT_STREAM)


def health_shape(checks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Seed 003's health document from the bus's checks (``nats_connected`` becomes
    ``broker_connected``; Redis is optional here, so the database stands in for it)."""
    healthy = all(c.get("ok") for c in checks.values())
    return {
        "status": "healthy" if healthy else "unhealthy",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "details": {"broker_connected": bool(checks.get("broker", {}).get("ok")),
                    "database_connected": bool(checks.get("database", {}).get("ok")),
                    "running": healthy},
    }
