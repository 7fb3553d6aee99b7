"""Processing history: one record per (event, processor, stage, attempt) and its summary.

A stage's record is upserted as it progresses (PROCESSING, then COMPLETED or FAILED), keyed by
a ``history_id`` derived from tenant, event, processor, stage and retry count, so a redelivered
record overwrites instead of duplicating, and a late PROCESSING never undoes a final status.

Summary rules (the seed's response shape):
* ``total_processing_time_ms``: sum of every record's duration, retries included;
* ``stages_completed``: (processor, stage) pairs whose latest attempt is COMPLETED;
* ``overall_status``: PENDING with no records; FAILED if any latest attempt FAILED; else
  PROCESSING if any is not final; else COMPLETED (SKIPPED counts as done).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from psycopg.types.json import Jsonb
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_serializer, model_validator

from esb.db import Database


class ProcessingStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    RETRYING = "RETRYING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


FINAL_STATUSES = frozenset({ProcessingStatus.COMPLETED, ProcessingStatus.FAILED,
                            ProcessingStatus.SKIPPED})


def history_id_for(tenant_id: str, event_id: str, processor_id: str, stage: str,
                   retry_count: int) -> str:
    digest = hashlib.sha256(
        "\x1f".join([tenant_id, event_id, processor_id, stage, str(retry_count)]).encode()
    ).hexdigest()
    return f"hist_{digest[:26]}"


class ProcessingRecord(BaseModel):
    """One stage attempt for one event, as a pipeline stage reports it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant_id: str = Field(min_length=1)
    event_id: str = Field(min_length=1)
    processor_id: str = Field(min_length=1)
    processing_stage: str = Field(min_length=1)
    status: ProcessingStatus
    started_at: AwareDatetime
    completed_at: AwareDatetime | None = None
    processing_duration_ms: float | None = Field(None, ge=0)
    input_data: dict[str, Any] | None = None
    output_data: dict[str, Any] | None = None
    error: dict[str, Any] | None = Field(None, description="message, type, stack_trace ...")
    retry_count: int = Field(0, ge=0)
    history_id: str = ""

    @model_validator(mode="after")
    def _derive(self) -> Self:
        if not self.history_id:
            object.__setattr__(self, "history_id", history_id_for(
                self.tenant_id, self.event_id, self.processor_id, self.processing_stage,
                self.retry_count))
        if self.processing_duration_ms is None and self.completed_at is not None:
            elapsed = (self.completed_at - self.started_at).total_seconds() * 1000
            object.__setattr__(self, "processing_duration_ms", max(elapsed, 0.0))
        return self


class HistoryEntry(BaseModel):
    """One element of ``processing_history`` in the response."""

    history_id: str
    processor_id: str
    processing_stage: str
    status: ProcessingStatus
    started_at: datetime
    completed_at: datetime | None = None
    processing_duration_ms: float | None = None
    input_data: dict[str, Any] | None = None
    output_data: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    retry_count: int = 0

    @field_serializer("processing_duration_ms")
    def _whole_ms_as_int(self, value: float | None) -> float | int | None:
        return int(value) if value is not None and float(value).is_integer() else value


class ProcessingHistoryResponse(BaseModel):
    event_id: str
    processing_history: list[HistoryEntry]
    total_processing_time_ms: float | int
    stages_completed: int
    overall_status: str

    def to_json(self) -> dict[str, Any]:
        """The seed's JSON; absent optional fields (input/output/error) are left out."""
        return self.model_dump(mode="json", exclude_none=True)


def summarize(event_id: str, entries: Iterable[HistoryEntry]) -> ProcessingHistoryResponse:
    ordered = sorted(entries, key=lambda e: (e.started_at, e.history_id))
    latest: dict[tuple[str, str], HistoryEntry] = {}
    for entry in ordered:
        key = (entry.processor_id, entry.processing_stage)
        current = latest.get(key)
        if current is None or (entry.retry_count, entry.started_at) >= (current.retry_count,
                                                                         current.started_at):
            latest[key] = entry
    statuses = [e.status for e in latest.values()]
    if not statuses:
        overall = ProcessingStatus.PENDING
    elif ProcessingStatus.FAILED in statuses:
        overall = ProcessingStatus.FAILED
    elif any(s not in FINAL_STATUSES for s in statuses):
        overall = ProcessingStatus.PROCESSING
    else:
        overall = ProcessingStatus.COMPLETED
    total = sum(e.processing_duration_ms or 0 for e in ordered)
    return ProcessingHistoryResponse(
        event_id=event_id,
        processing_history=ordered,
        total_processing_time_ms=int(total) if float(total).is_integer() else total,
        stages_completed=sum(s is ProcessingStatus.COMPLETED for s in statuses),
        overall_status=overall.value,
    )


_UPSERT = """
INSERT INTO processing_history (
    history_id, tenant_id, event_id, processor_id, processing_stage, status, started_at,
    completed_at, duration_ms, input_data, output_data, error, retry_count)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (history_id) DO UPDATE SET
    status = EXCLUDED.status,
    completed_at = COALESCE(EXCLUDED.completed_at, processing_history.completed_at),
    duration_ms = COALESCE(EXCLUDED.duration_ms, processing_history.duration_ms),
    input_data = COALESCE(EXCLUDED.input_data, processing_history.input_data),
    output_data = COALESCE(EXCLUDED.output_data, processing_history.output_data),
    error = COALESCE(EXCLUDED.error, processing_history.error),
    recorded_at = now()
WHERE processing_history.tenant_id = EXCLUDED.tenant_id
  AND (processing_history.status NOT IN ('COMPLETED', 'FAILED', 'SKIPPED')
       OR EXCLUDED.status IN ('COMPLETED', 'FAILED', 'SKIPPED'))
"""

_SELECT = """
SELECT history_id, processor_id, processing_stage, status, started_at, completed_at,
       duration_ms AS processing_duration_ms, input_data, output_data, error, retry_count
FROM processing_history
WHERE tenant_id = %s AND event_id = %s
ORDER BY started_at, history_id
"""


def _json(value: dict[str, Any] | None) -> Jsonb | None:
    return None if value is None else Jsonb(value)


class ProcessingHistory:
    """Stores stage records and answers ``GET /events/{id}/processing-history``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, records: Sequence[ProcessingRecord]) -> None:
        if not records:
            return
        params = [
            (r.history_id, r.tenant_id, r.event_id, r.processor_id, r.processing_stage,
             r.status.value, r.started_at, r.completed_at, r.processing_duration_ms,
             _json(r.input_data), _json(r.output_data), _json(r.error), r.retry_count)
            for r in records
        ]
        async with self.db.connection() as conn, conn.cursor() as cur:
            await cur.executemany(_UPSERT, params)

    async def for_event(self, tenant_id: str, event_id: str) -> ProcessingHistoryResponse:
        """The event's history (empty and PENDING if nothing was recorded for this tenant)."""
        async with self.db.connection() as conn:
            cur = await conn.execute(_SELECT, (tenant_id, event_id))
            rows = await cur.fetchall()
        return summarize(event_id, (HistoryEntry.model_validate(row) for row in rows))
