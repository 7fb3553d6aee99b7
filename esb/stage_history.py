"""The stage-history header codec: stage timings carried on an event's Kafka headers.

A pipeline stage that handles an event (routing, validation, event sourcing ...) appends one
entry to the ``esb-history`` header: a compact JSON list, one object per stage::

    [{"p": "proc_event_sourcing", "s": "SOURCING", "st": "COMPLETED",
      "t0": 1737887400000.0, "t1": 1737887400012.5, "o": {"version": 6}}]

``p`` processor id, ``s`` stage, ``st`` status, ``t0``/``t1`` start/end in epoch milliseconds,
``o`` optional output data, ``r`` optional retry count. The header can arrive from any producer,
so decoding never fails: a malformed header reads as no entries (the read side turns entries
into processing-history records, ``esb.readside.stages``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from esb import jsonsafe

HISTORY_HEADER = "esb-history"
#: a history longer than this is a producer's, not ours: read as empty
MAX_HISTORY_BYTES = 64 << 10


def stage_entry(processor_id: str, stage: str, started_ms: float, completed_ms: float, *,
                status: str = "COMPLETED", output: Mapping[str, Any] | None = None,
                retry_count: int = 0) -> dict[str, Any]:
    entry: dict[str, Any] = {"p": processor_id, "s": stage, "st": status,
                             "t0": round(started_ms, 3), "t1": round(completed_ms, 3)}
    if output:
        entry["o"] = dict(output)
    if retry_count:
        entry["r"] = retry_count
    return entry


def append_stage(headers: Sequence[tuple[str, bytes]], entry: Mapping[str, Any],
                 ) -> list[tuple[str, bytes]]:
    """``headers`` with ``entry`` added to the history header (other headers untouched)."""
    existing: list[Any] = []
    out: list[tuple[str, bytes]] = []
    for key, value in headers:
        if key == HISTORY_HEADER:
            existing = decode(value)
        else:
            out.append((key, value))
    existing.append(dict(entry))
    out.append((HISTORY_HEADER, json.dumps(existing, separators=(",", ":")).encode()))
    return out


def stage_appender(entry: Mapping[str, Any],
                   ) -> Callable[[Sequence[tuple[str, bytes]]], list[tuple[str, bytes]]]:
    """``append_stage`` for a batch sharing one entry: records without a history yet (every
    fresh publish) get the entry encoded once for the whole batch, not once per record."""
    first = (HISTORY_HEADER, json.dumps([dict(entry)], separators=(",", ":")).encode())

    def append(headers: Sequence[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        if any(key == HISTORY_HEADER for key, _ in headers):
            return append_stage(headers, entry)
        return [*headers, first]

    return append


def decode(value: bytes | None) -> list[Any]:
    """The entries of one history header; ``[]`` for anything that is not a JSON list."""
    if not value or len(value) > MAX_HISTORY_BYTES:
        return []
    try:
        loaded = jsonsafe.loads(value, max_depth=8)
    except ValueError:
        return []
    return loaded if isinstance(loaded, list) else []


def entries(headers: Iterable[tuple[str, bytes | None]]) -> list[Any]:
    """Every entry of the history header(s) of a record."""
    return [entry for key, value in headers if key == HISTORY_HEADER for entry in decode(value)]
