"""Aggregation functions, group_by, WINDOW collection and the output-event lineage."""

from __future__ import annotations

import json
from typing import Any

import pytest

from esb.errors import ValidationFailed
from esb.processing.aggregates import WindowedAggregateProcessor, group_key
from esb.processing.lineage import derive_attributes, window_output_event
from esb.processing.models import parse_processor_definition
from esb.processing.windows import WindowSpec

TUMBLING = WindowSpec("tumbling", size_ms=100)


def order(event_id: str, ts: int, total: Any, segment: str = "smb",
          region: str = "eu") -> dict[str, Any]:
    return {"event_id": event_id, "event_type": "order.placed", "timestamp": ts,
            "correlation_id": f"c{event_id}", "tenant_id": "t1",
            "payload": {"order_total": total, "customer_segment": segment, "region": region,
                        "lines": {"count": 2}}}


def aggregate(function: str, values: list[Any], field: str | None = "order_total") -> Any:
    processor = WindowedAggregateProcessor(window=TUMBLING, function=function, field=field)
    state = processor.new_state()
    for i, value in enumerate(values):
        processor.process(state, order(f"e{i}", i, value))
    [result] = processor.advance(state, 100).outputs
    return result["value"]


@pytest.mark.parametrize(("function", "expected"), [
    ("count", 4), ("sum", 16.5), ("avg", 4.125), ("min", 1), ("max", 9.5), ("distinct", 3),
])
def test_functions_ignore_nulls(function: str, expected: Any) -> None:
    assert aggregate(function, [3, None, 1, 9.5, 3]) == expected


def test_distinct_compares_json_values() -> None:
    assert aggregate("distinct", [{"a": 1, "b": 2}, {"b": 2, "a": 1}, [1], "1", 1]) == 4


def test_count_without_field_counts_events_and_avg_of_nothing_is_null() -> None:
    assert aggregate("count", [None, None], field=None) == 2
    assert aggregate("avg", [None]) is None


def test_non_numeric_sum_is_rejected_before_state_changes() -> None:
    processor = WindowedAggregateProcessor(window=TUMBLING, function="sum", field="order_total")
    state = processor.new_state()
    before = json.dumps(state)
    with pytest.raises(ValidationFailed, match="needs a number"):
        processor.process(state, order("e1", 1, "12"), partition=0, offset=1)
    assert json.dumps(state) == before  # not applied, offset not consumed
    with pytest.raises(ValidationFailed):
        processor.process(state, order("e2", 2, True))


def test_group_by_keys_results_and_dotted_paths() -> None:
    definition = parse_processor_definition({
        "processor_name": "daily_sales", "processor_type": "AGGREGATE",
        "source_stream_id": "s", "target_stream_id": "t",
        "processing_logic": {"aggregation_function": "sum", "aggregation_field": "order_total",
                             "group_by": ["customer_segment", "payload.region", "tenant_id"]},
        "window_config": {"window_type": "tumbling", "window_size_ms": 100}})
    processor = WindowedAggregateProcessor.from_definition(definition)
    state = processor.new_state()
    for event in [order("1", 1, 10), order("2", 2, 5, region="us"), order("3", 3, 1)]:
        processor.process(state, event)
    results = processor.advance(state, 100).outputs
    assert sorted((r["group"]["payload.region"], r["value"]) for r in results) == \
        [("eu", 11), ("us", 5)]
    assert all(r["group"]["tenant_id"] == "t1" for r in results)
    assert group_key(order("x", 0, 1), ["lines.count", "missing"])[1] == \
        {"lines.count": 2, "missing": None}


def test_window_type_collects_bounded_events_in_arrival_order() -> None:
    definition = parse_processor_definition({
        "processor_name": "w", "processor_type": "WINDOW", "source_stream_id": "s",
        "target_stream_id": "t", "processing_logic": {"max_events": 2},
        "window_config": {"window_type": "session", "gap_ms": 15, "grace_period_ms": 20}})
    processor = WindowedAggregateProcessor.from_definition(definition)
    state = processor.new_state()
    for event in [order("1", 50, 1), order("2", 30, 2), order("3", 41, 3)]:
        processor.process(state, event)  # 30 and 50 are separate until 41 bridges them
    [result] = processor.advance(state, 100).outputs
    assert [e["event_id"] for e in result["value"]] == ["1", "2"]
    assert result["value"][0]["payload"]["order_total"] == 1
    assert (result["window_start"], result["window_end"], result["event_count"]) == (30, 65, 3)


def test_window_output_event_is_deterministic_with_lineage() -> None:
    processor = WindowedAggregateProcessor(window=TUMBLING, function="sum",
                                           field="order_total")
    state = processor.new_state()
    processor.process(state, order("a", 1, 2))
    processor.process(state, order("b", 2, 3))
    [result] = processor.advance(state, 100).outputs
    out = window_output_event("proc_1", result, event_type="sales.summed", tenant_id="t1")
    assert out["payload"]["value"] == 5 and out["payload"]["input_event_ids"] == ["a", "b"]
    assert out["causation_id"] == "b" and out["correlation_id"] == "a"
    assert out["timestamp"] == "1970-01-01T00:00:00.099Z"
    assert window_output_event("proc_1", result, event_type="x")["event_id"] == out["event_id"]
    assert window_output_event("proc_2", result, event_type="x")["event_id"] != out["event_id"]


def test_derive_attributes_propagates_correlation_and_tenant() -> None:
    inputs = [{"event_id": "1", "tenant_id": "t", "correlation_id": None},
              {"event_id": "2", "tenant_id": "t", "correlation_id": "cor"}]
    attrs = derive_attributes(processor_id="p", inputs=inputs)
    assert attrs["correlation_id"] == "cor" and attrs["causation_id"] == "2"
    assert attrs["tenant_id"] == "t"
    mixed = derive_attributes(processor_id="p", inputs=[{"event_id": "1", "tenant_id": "a"},
                                                        {"event_id": "2", "tenant_id": "b"}])
    assert "tenant_id" not in mixed and mixed["correlation_id"] == "1"
    with pytest.raises(ValueError):
        derive_attributes(processor_id="p")
