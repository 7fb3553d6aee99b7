"""Processor definitions: the seed bodies validate; bad ones fail with paths."""

from __future__ import annotations

from typing import Any

import pytest

from esb.errors import ValidationFailed
from esb.processing.models import (
    AggregateLogic,
    FilterLogic,
    ProcessorType,
    parse_processor_definition,
)

SEED_FILTER = {
    "processor_name": "user_verification_filter",
    "processor_description": "Filter only verified user events",
    "processor_type": "FILTER",
    "source_stream_id": "str_user_events_123",
    "target_stream_id": "str_verified_users_456",
    "processing_logic": {
        "filter_expression": "payload.verification_status == 'verified'",
        "additional_checks": ["payload.email_verified == true",
                              "payload.phone_verified == true"],
    },
    "parallelism": 3,
    "error_handling_strategy": "RETRY",
}

SEED_AGGREGATE = {
    "processor_name": "daily_sales_aggregator",
    "processor_type": "AGGREGATE",
    "source_stream_id": "str_order_events",
    "target_stream_id": "str_daily_sales",
    "processing_logic": {"aggregation_function": "sum", "aggregation_field": "order_total",
                         "group_by": ["customer_segment", "region"]},
    "window_config": {"window_type": "tumbling", "window_size_ms": 86400000,
                      "grace_period_ms": 3600000},
    "state_store_config": {"store_type": "rocksdb",
                           "changelog_topic": "sales-aggregator-changelog"},
}


def test_seed_bodies_validate() -> None:
    filt = parse_processor_definition(SEED_FILTER)
    assert filt.processor_type is ProcessorType.FILTER
    assert isinstance(filt.logic, FilterLogic)
    assert filt.logic.additional_checks[1] == "payload.phone_verified == true"
    agg = parse_processor_definition(SEED_AGGREGATE)
    assert isinstance(agg.logic, AggregateLogic)
    assert agg.window_config is not None and agg.window_config.grace_period_ms == 3600000
    assert agg.error_handling_strategy == "RETRY" and agg.parallelism == 1
    dumped = agg.model_dump(mode="json")
    assert "kind" not in dumped["processing_logic"]
    assert parse_processor_definition(dumped) == agg


def errors_of(body: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as info:
        parse_processor_definition(body)
    assert info.value.http_status == 422
    return {error["path"]: error["message"] for error in info.value.errors}


def test_expression_that_does_not_compile_is_rejected_at_creation() -> None:
    body = {**SEED_FILTER, "processing_logic": {"filter_expression": "payload.x ==",
                                                "additional_checks": ["true", "1 +"]}}
    errors = errors_of(body)
    assert "does not compile" in errors["processing_logic.filter_expression"]
    assert errors["processing_logic.additional_checks"].startswith("additional_checks[1]")


@pytest.mark.parametrize(("change", "path", "fragment"), [
    ({"processor_type": "SORT"}, "processor_type", "FILTER"),
    ({"error_handling_strategy": "IGNORE"}, "error_handling_strategy", "DEAD_LETTER"),
    ({"parallelism": 0}, "parallelism", "greater than or equal"),
    ({"processing_logic": {"filter_expresion": "true"}}, "processing_logic.filter_expression",
     "required"),
    ({"window_config": {"window_type": "tumbling", "window_size_ms": 5}}, "",
     "window_config does not apply to FILTER"),
    ({"processor_name": "bad name!"}, "processor_name", "pattern"),
])
def test_bad_filter_definitions(change: dict[str, Any], path: str, fragment: str) -> None:
    errors = errors_of({**SEED_FILTER, **change})
    assert path in errors and fragment in errors[path]


@pytest.mark.parametrize(("window", "fragment"), [
    ({"window_type": "hopping", "window_size_ms": 10}, "need advance_ms"),
    ({"window_type": "hopping", "window_size_ms": 10, "advance_ms": 20}, "must not exceed"),
    ({"window_type": "session", "window_size_ms": 10}, "need gap_ms"),
    ({"window_type": "tumbling", "window_size_ms": 10, "gap_ms": 5}, "only to session"),
    ({"window_type": "sliding", "window_size_ms": 10}, "tumbling"),
    ({"window_type": "tumbling", "window_size_ms": 10, "grace_period_ms": -1}, "greater"),
])
def test_bad_window_configs(window: dict[str, Any], fragment: str) -> None:
    errors = errors_of({**SEED_AGGREGATE, "window_config": window})
    assert any(path.startswith("window_config") and fragment in message
               for path, message in errors.items()), errors


def test_aggregate_rules() -> None:
    no_window = {k: v for k, v in SEED_AGGREGATE.items() if k != "window_config"}
    assert "AGGREGATE processors need window_config" in errors_of(no_window)[""]
    no_field = {**SEED_AGGREGATE, "processing_logic": {"aggregation_function": "avg"}}
    assert "avg needs aggregation_field" in errors_of(no_field)["processing_logic"]
    count = {**SEED_AGGREGATE, "processing_logic": {"aggregation_function": "count"}}
    assert parse_processor_definition(count).logic.aggregation_field is None
    median = {**SEED_AGGREGATE, "processing_logic": {"aggregation_function": "median",
                                                     "aggregation_field": "x"}}
    assert "processing_logic.aggregation_function" in errors_of(median)


def test_join_window_rules() -> None:
    body = {"processor_name": "j", "processor_type": "JOIN", "source_stream_id": "orders",
            "target_stream_id": "joined",
            "processing_logic": {"join_stream_id": "payments", "left_key": "order_id"}}
    assert "join_window_ms" in errors_of(body)[""]
    body["processing_logic"]["join_window_ms"] = 1000
    assert parse_processor_definition(body).logic.join_window_ms == 1000


def test_custom_processor_must_be_installed() -> None:
    body = {"processor_name": "c", "processor_type": "CUSTOM", "source_stream_id": "a",
            "target_stream_id": "b", "processing_logic": {"entry_point": "no_such_plugin"}}
    message = errors_of(body)["processing_logic.entry_point"]
    assert "no custom processor named 'no_such_plugin'" in message
    assert "esb.processors" in message
