from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from esb.readside import ProcessingHistory, ProcessingRecord, ProcessingStatus

pytestmark = pytest.mark.postgres

T0 = datetime(2025, 1, 26, 10, 30, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def record(tenant: str, stage: str, processor: str, status: str, start_ms: int,
           end_ms: int | None = None, **extra) -> ProcessingRecord:
    return ProcessingRecord(
        tenant_id=tenant, event_id="evt_123", processor_id=processor, processing_stage=stage,
        status=status, started_at=T0 + start_ms * MS,
        completed_at=None if end_ms is None else T0 + end_ms * MS, **extra)


async def test_seed_processing_history_shape(db, tenant):
    history = ProcessingHistory(db)
    await history.record([
        record(tenant, "ENRICHMENT", "proc_enrichment", "COMPLETED", 130, 245),
        record(tenant, "VALIDATION", "proc_validation", "COMPLETED", 0, 125,
               input_data={"event_type": "user.created", "payload": {"a": 1}},
               output_data={"validation_result": "passed", "schema_version": "1.0"}),
    ])
    body = (await history.for_event(tenant, "evt_123")).to_json()
    assert body["event_id"] == "evt_123"
    assert body["total_processing_time_ms"] == 240
    assert body["stages_completed"] == 2
    assert body["overall_status"] == "COMPLETED"
    first, second = body["processing_history"]
    assert first["processor_id"] == "proc_validation"  # ordered by start time
    assert first["processing_duration_ms"] == 125
    assert first["output_data"] == {"validation_result": "passed", "schema_version": "1.0"}
    assert first["retry_count"] == 0 and first["history_id"].startswith("hist_")
    assert "input_data" not in second and "error" not in second
    assert set(first) == {"history_id", "processor_id", "processing_stage", "status",
                          "started_at", "completed_at", "processing_duration_ms", "input_data",
                          "output_data", "retry_count"}


async def test_stage_record_is_upserted_and_final_status_is_not_undone(db, tenant):
    history = ProcessingHistory(db)
    await history.record([record(tenant, "VALIDATION", "p", "PROCESSING", 0)])
    running = await history.for_event(tenant, "evt_123")
    assert running.overall_status == "PROCESSING" and running.stages_completed == 0
    await history.record([record(tenant, "VALIDATION", "p", "COMPLETED", 0, 40,
                                 output_data={"ok": True})])
    await history.record([record(tenant, "VALIDATION", "p", "PROCESSING", 0)])  # late redelivery
    done = await history.for_event(tenant, "evt_123")
    assert len(done.processing_history) == 1
    entry = done.processing_history[0]
    assert entry.status is ProcessingStatus.COMPLETED
    assert entry.output_data == {"ok": True} and entry.processing_duration_ms == 40
    assert done.overall_status == "COMPLETED"


async def test_retries_and_failures(db, tenant):
    history = ProcessingHistory(db)
    await history.record([
        record(tenant, "DELIVERY", "webhook", "FAILED", 0, 10, retry_count=0,
               error={"message": "timeout", "type": "Timeout"}),
        record(tenant, "VALIDATION", "v", "COMPLETED", 0, 5),
    ])
    failed = await history.for_event(tenant, "evt_123")
    assert failed.overall_status == "FAILED"
    delivery = next(e for e in failed.to_json()["processing_history"]
                    if e["processing_stage"] == "DELIVERY")
    assert delivery["error"] == {"message": "timeout", "type": "Timeout"}
    await history.record([record(tenant, "DELIVERY", "webhook", "COMPLETED", 20, 27,
                                 retry_count=1)])
    recovered = await history.for_event(tenant, "evt_123")
    assert recovered.overall_status == "COMPLETED"
    assert recovered.stages_completed == 2
    assert recovered.total_processing_time_ms == 22  # retries count towards time spent
    assert len(recovered.processing_history) == 3


async def test_history_is_tenant_scoped_and_empty_is_pending(db, tenant):
    history = ProcessingHistory(db)
    await history.record([record(tenant, "VALIDATION", "v", "COMPLETED", 0, 5)])
    other = await history.for_event(f"{tenant}_x", "evt_123")
    assert other.processing_history == [] and other.overall_status == "PENDING"
    assert other.total_processing_time_ms == 0
