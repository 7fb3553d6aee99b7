"""Pure parts of the processing runtime (no broker): wire encoding, handlers, partition state."""

from __future__ import annotations

import json

from esb.processing.handlers import PatternHandler, ProcessorHandler
from esb.processing.metrics import ProcessorMetrics
from esb.processing.models import parse_processor_definition
from esb.processing.partition_state import (
    decode,
    encode,
    is_applied,
    mark_applied,
    metrics_snapshot,
    new_partition_state,
)
from esb.processing.wire import envelope_for, event_from_record

HEADERS = [("ce_specversion", b"1.0"), ("ce_id", b"evt_1"), ("ce_source", b"shop"),
           ("ce_type", b"order.placed"), ("ce_time", b"2025-01-26T10:30:00.000Z"),
           ("ce_tenantid", b"t1"), ("ce_correlationid", b"c1"), ("content-type",
                                                                  b"application/json")]


def test_a_record_round_trips_through_the_seed_shape() -> None:
    event = event_from_record(HEADERS, b'{"amount": 5}')
    assert (event["event_id"], event["correlation_id"], event["payload"]) == ("evt_1", "c1",
                                                                             {"amount": 5})
    envelope = envelope_for({**event, "event_id": "evt_2", "causation_id": "evt_1"},
                            tenant="t1", stream="out")
    headers = dict(envelope.kafka_headers())
    assert headers["ce_causationid"] == b"evt_1" and headers["ce_stream"] == b"out"
    assert headers["ce_time"] == b"2025-01-26T10:30:00.000Z"
    assert json.loads(envelope.data) == {"amount": 5}


def _aggregate(function: str = "sum") -> ProcessorHandler:
    definition = parse_processor_definition({
        "processor_name": "p", "processor_type": "AGGREGATE", "source_stream_id": "a",
        "target_stream_id": "b",
        "processing_logic": {"aggregation_function": function, "aggregation_field": "amount",
                             "group_by": ["region"]},
        "window_config": {"window_type": "tumbling", "window_size_ms": 1000}})
    return ProcessorHandler("proc_1", definition, tenant="t1")


def _event(event_id: str, ms: int, amount: int, region: str = "eu") -> dict:
    return {"event_id": event_id, "event_type": "o", "timestamp": ms, "correlation_id": "c",
            "payload": {"amount": amount, "region": region}}


def test_window_results_carry_lineage_and_a_deterministic_id() -> None:
    handler = _aggregate()
    runs = []
    for _ in range(2):  # a replay from scratch gives the same output, same id
        state = handler.new_operator_state()
        handler.handle(state, _event("e1", 10, 3))
        handler.handle(state, _event("e2", 500, 4))
        runs.append(handler.handle(state, _event("e3", 1500, 1)).outputs)
    assert runs[0] == runs[1] and len(runs[0]) == 1
    output = runs[0][0]
    assert output["payload"]["value"] == 7 and output["payload"]["input_event_ids"] == ["e1",
                                                                                          "e2"]
    # a window mixes correlations: it starts its own chain at its first input
    assert output["causation_id"] == "e2" and output["correlation_id"] == "e1"
    assert output["partition_key"] == '["eu"]'
    late = handler.handle(state, _event("e4", 20, 100))
    assert late.late and late.outcome == "filtered" and not late.outputs


def test_filter_forwards_passing_events_only() -> None:
    definition = parse_processor_definition({
        "processor_name": "f", "processor_type": "FILTER", "source_stream_id": "a",
        "target_stream_id": "b", "processing_logic": {"filter_expression": "payload.amount > 3"}})
    handler = ProcessorHandler("proc_f", definition, tenant="t1")
    assert handler.handle(None, _event("e1", 1, 5)).forward
    dropped = handler.handle(None, _event("e2", 1, 1))
    assert (dropped.forward, dropped.outcome) == (False, "filtered")


def test_absence_fires_on_tick_and_the_alert_names_the_trigger() -> None:
    handler = PatternHandler("pat_1", {"kind": "absence", "trigger_event_type": "a",
                                       "expected_event_type": "b", "within_ms": 100},
                             tenant="t1", pattern_name="unpaid", timer_lag_ms=0)
    state = handler.new_operator_state()
    assert handler.tick(state, 10_000) == []  # nothing seen: no time advance at all
    state = handler.new_operator_state()
    handler.handle(state, {"event_id": "x", "event_type": "a", "timestamp": 1000,
                           "correlation_id": "k"})
    assert handler.tick(state, 1050) == []
    [alert] = handler.tick(state, 1200)
    assert alert["payload"]["matched_event_ids"] == ["x"]
    assert alert["correlation_id"] == "k" and alert["causation_id"] == "x"
    assert alert["payload"]["pattern_name"] == "unpaid" and alert["priority"] == "HIGH"


def test_partition_state_round_trips_and_metrics_merge() -> None:
    first, second = new_partition_state(None), new_partition_state({"x": 1})
    mark_applied(first, "t.normal", 0, 41)
    assert is_applied(first, "t.normal", 0, 41) and not is_applied(first, "t.normal", 0, 42)
    assert not is_applied(first, "t.high", 0, 3)
    ProcessorMetrics(first["metrics"]).record("passed", duration_ms=1, at_ms=1000)
    ProcessorMetrics(second["metrics"]).record("filtered", duration_ms=3, at_ms=2000)
    second["counters"]["late_events"] = 2
    restored = [decode(encode(state)) for state in (first, second)]
    snapshot = metrics_snapshot(restored, now_ms=2500)
    assert (snapshot["events_processed"], snapshot["events_passed"],
            snapshot["events_filtered"], snapshot["late_events"]) == (2, 1, 1, 2)
    assert snapshot["avg_processing_time_ms"] == 2.0
    assert metrics_snapshot([], now_ms=0)["events_processed"] == 0
