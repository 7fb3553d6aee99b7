"""Stage timings carried on an event's Kafka headers, read by the projection into history.

A pipeline stage that handles an event (routing, validation, event sourcing ...) appends one
entry to the ``esb-history`` header: a compact JSON list, one object per stage::

    [{"p": "proc_event_sourcing", "s": "SOURCING", "st": "COMPLETED",
      "t0": 1737887400000.0, "t1": 1737887400012.5, "o": {"version": 6}}]

``p`` processor id, ``s`` stage, ``st`` status, ``t0``/``t1`` start/end in epoch milliseconds,
``o`` optional output data, ``r`` optional retry count. The projection agent turns each entry
into a :class:`~esb.readside.history.ProcessingRecord`; malformed entries are skipped, never fatal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from esb.readside.history import ProcessingRecord, ProcessingStatus

HISTORY_HEADER = "esb-history"

log = logging.getLogger(__name__)


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
            existing = _load(value)
        else:
            out.append((key, value))
    existing.append(dict(entry))
    out.append((HISTORY_HEADER, json.dumps(existing, separators=(",", ":")).encode()))
    return out


def _load(value: bytes | None) -> list[Any]:
    try:
        loaded = json.loads(value) if value else []
    except ValueError:
        return []
    return loaded if isinstance(loaded, list) else []


def _time(ms: Any) -> datetime:
    return datetime.fromtimestamp(float(ms) / 1000, UTC)


def records_from_headers(tenant_id: str, event_id: str, headers: Iterable[tuple[str, bytes]],
                         ) -> list[ProcessingRecord]:
    records: list[ProcessingRecord] = []
    for key, value in headers:
        if key != HISTORY_HEADER:
            continue
        for entry in _load(value):
            try:
                records.append(ProcessingRecord(
                    tenant_id=tenant_id, event_id=event_id, processor_id=str(entry["p"]),
                    processing_stage=str(entry["s"]),
                    status=ProcessingStatus(entry.get("st", "COMPLETED")),
                    started_at=_time(entry["t0"]),
                    completed_at=_time(entry["t1"]) if entry.get("t1") is not None else None,
                    output_data=entry.get("o"), retry_count=int(entry.get("r", 0)),
                ))
            except (KeyError, TypeError, ValueError, ValidationError) as exc:
                log.debug("skipping malformed history entry %r: %s", entry, exc)
    return records
