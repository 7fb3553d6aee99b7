"""Processing-history records from the stage timings an event carries (the header codec is
:mod:`esb.stage_history`); malformed entries are skipped, never fatal."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from esb.readside.history import ProcessingRecord, ProcessingStatus
from esb.stage_history import entries

log = logging.getLogger(__name__)


def _time(ms: Any) -> datetime:
    return datetime.fromtimestamp(float(ms) / 1000, UTC)


def records_from_headers(tenant_id: str, event_id: str, headers: Iterable[tuple[str, bytes]],
                         ) -> list[ProcessingRecord]:
    records: list[ProcessingRecord] = []
    for entry in entries(headers):
        try:
            records.append(ProcessingRecord(
                tenant_id=tenant_id, event_id=event_id, processor_id=str(entry["p"]),
                processing_stage=str(entry["s"]),
                status=ProcessingStatus(entry.get("st", "COMPLETED")),
                started_at=_time(entry["t0"]),
                completed_at=_time(entry["t1"]) if entry.get("t1") is not None else None,
                output_data=entry.get("o"), retry_count=int(entry.get("r", 0)),
            ))
        except (KeyError, TypeError, ValueError, OverflowError, OSError,
                ValidationError) as exc:
            log.debug("skipping malformed history entry: %s", type(exc).__name__)
    return records
