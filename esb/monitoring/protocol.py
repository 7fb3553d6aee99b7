"""The ``/ws/monitoring`` protocol (seed 001): a client sends
``{"type": "subscribe", "streams": [...], "metrics": [...]}`` and then receives one
``{"message_type": "monitoring", ...}`` push per interval. Anything it cannot serve (a stream the
tenant does not own, an unknown metric, bad JSON) is answered with
``{"message_type": "error", "code": ..., "detail": ...}`` and no data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from esb.authz import Narrowing
from esb.errors import EsbError, InvalidRequest, NotFound
from esb.monitoring.snapshot import METRIC_NAMES

MAX_STREAMS = 100  # per connection: bounds the work of each push


@dataclass(frozen=True, slots=True)
class Subscribe:
    streams: tuple[str, ...]
    metrics: tuple[str, ...]


def parse_subscribe(text: str) -> Subscribe:
    """A subscribe request, or InvalidRequest saying what is wrong with it."""
    try:
        message = json.loads(text)
    except ValueError:
        raise InvalidRequest("message is not JSON") from None
    if not isinstance(message, dict) or message.get("type") != "subscribe":
        raise InvalidRequest('expected {"type": "subscribe", "streams": [...], "metrics": [...]}')
    streams = message.get("streams")
    if (not isinstance(streams, list) or not streams or len(streams) > MAX_STREAMS
            or not all(isinstance(s, str) and 0 < len(s) <= 256 for s in streams)):
        raise InvalidRequest(f"streams must be a list of 1 to {MAX_STREAMS} stream ids or names",
                             field="streams")
    metrics = message.get("metrics", list(METRIC_NAMES))
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise InvalidRequest("metrics must be a list of names", field="metrics")
    unknown = sorted(set(metrics) - set(METRIC_NAMES))
    if unknown:
        raise InvalidRequest(f"unknown metrics {unknown}; known: {list(METRIC_NAMES)}",
                             field="metrics")
    return Subscribe(tuple(dict.fromkeys(streams)), tuple(dict.fromkeys(metrics or METRIC_NAMES)))


def resolve_streams(directory: Any, tenant: str, refs: tuple[str, ...],
                    scope: Narrowing | None = None) -> dict[str, str]:
    """Requested id or name -> stream name, for ``tenant`` only: another tenant's stream is
    NotFound exactly like one that does not exist (no oracle). A token whose ``read`` scope
    (``esb_scopes``) does not cover a stream is refused it (OutOfScope), as on the REST routes."""
    out: dict[str, str] = {}
    for ref in refs:
        stream = directory.get(tenant, ref)
        if stream is None:
            raise NotFound(f"stream {ref!r} not found", stream_id=ref)
        if scope is not None:
            scope.require(stream=stream["stream_name"])
        out[ref] = stream["stream_name"]
    return out


def push(figures: dict[str, dict[str, float]], metrics: tuple[str, ...],
         interval_s: float) -> dict[str, Any]:
    """One monitoring message: per stream, the requested figures (``lag`` adds seconds)."""
    data: dict[str, dict[str, float]] = {}
    for stream, values in figures.items():
        chosen = {m: values[m] for m in metrics}
        if "lag" in metrics:
            chosen["lag_seconds"] = values["lag_seconds"]
        data[stream] = chosen
    return {"message_type": "monitoring", "timestamp": datetime.now(UTC).isoformat(),
            "interval_s": interval_s, "data": data}


def error_message(exc: EsbError) -> dict[str, Any]:
    return {"message_type": "error", "code": exc.code, "detail": str(exc)}
