"""The metrics accumulator produces the seed's fields from recorded outcomes."""

from __future__ import annotations

import json

import pytest

from esb.processing.metrics import ProcessorMetrics, merge_snapshots

T0 = 1737887400000  # 2025-01-26T10:30:00Z


def test_snapshot_fields_add_up_like_the_seed() -> None:
    metrics = ProcessorMetrics(rate_window_s=10)
    for i in range(8):
        metrics.record("passed", duration_ms=10.0, at_ms=T0 + i * 1000)
    metrics.record("filtered", duration_ms=20.0, at_ms=T0 + 8000)
    metrics.record("error", duration_ms=30.0, at_ms=T0 + 9000)
    snap = metrics.snapshot(now_ms=T0 + 9000)
    assert snap == {
        "events_processed": 9, "events_passed": 8, "events_filtered": 1,
        "events_per_second": round(10 / 9, 2), "processing_rate": 90.0,
        "avg_processing_time_ms": 13.0, "error_count": 1,
        "last_processed_at": "2025-01-26T10:30:09.000Z",
    }


def test_rate_uses_only_the_recent_window_and_state_round_trips() -> None:
    metrics = ProcessorMetrics(rate_window_s=5)
    for i in range(100):
        metrics.record("passed", duration_ms=1, at_ms=T0 + i * 100)  # 10/s for 10 s
    restored = ProcessorMetrics(json.loads(json.dumps(metrics.state)), rate_window_s=5)
    assert restored.snapshot(now_ms=T0 + 9900)["events_per_second"] == 10.0
    assert restored.snapshot(now_ms=T0 + 60_000)["events_per_second"] == 0.0
    assert len(restored.state["per_second"]) <= 6


def test_empty_and_invalid() -> None:
    snap = ProcessorMetrics().snapshot(now_ms=T0)
    assert snap["events_processed"] == 0 and snap["last_processed_at"] is None
    assert snap["processing_rate"] == 100.0
    with pytest.raises(ValueError):
        ProcessorMetrics().record("dropped", duration_ms=1, at_ms=T0)  # type: ignore[arg-type]


def test_merge_replicas() -> None:
    first, second = ProcessorMetrics(), ProcessorMetrics()
    first.record("passed", duration_ms=10, at_ms=T0)
    second.record("filtered", duration_ms=30, at_ms=T0 + 5000)
    second.record("error", duration_ms=50, at_ms=T0 + 5000)
    merged = merge_snapshots([first.snapshot(now_ms=T0 + 5000),
                              second.snapshot(now_ms=T0 + 5000)])
    assert merged["events_processed"] == 2 and merged["error_count"] == 1
    assert merged["avg_processing_time_ms"] == 30.0
    assert merged["last_processed_at"] == "2025-01-26T10:30:05.000Z"
