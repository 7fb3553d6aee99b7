"""Payload validation: paths of every error, formats, Avro, engine choice, timing field."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from esb.schemas import BusinessRule, SchemaType, validate_payload
from esb.schemas.parsing import canonical_schema_text
from esb.schemas.validation import (
    compiled_json_schema,
    fast_path_supported,
    is_date_time,
    is_email,
    json_path,
)

SEED_SCHEMA = {
    "type": "object",
    "properties": {
        "user_id": {"type": "string"},
        "profile_data": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "email": {"type": "string", "format": "email"},
                "phone": {"type": "string"},
                "preferences": {"type": "object"},
            },
            "required": ["name", "email"],
        },
        "timestamp": {"type": "string", "format": "date-time"},
    },
    "required": ["user_id", "profile_data", "timestamp"],
}
SEED_EVENT = {
    "user_id": "user_123",
    "profile_data": {
        "name": "John Doe",
        "email": "john.doe@company.com",
        "phone": "+1-555-0123",
        "preferences": {"notifications": True, "theme": "dark"},
    },
    "timestamp": "2025-01-26T10:30:00Z",
}
TEXT = canonical_schema_text(SchemaType.JSON, SEED_SCHEMA)


def test_seed_event_is_valid_on_the_fast_engine() -> None:
    result = validate_payload(SchemaType.JSON, TEXT, SEED_EVENT, schema_version="2.0")
    assert result.is_valid and result.validation_errors == []
    assert result.schema_version == "2.0"
    assert result.validation_time_ms >= 0
    assert compiled_json_schema(TEXT).engine == "fastjsonschema"


def test_every_error_is_reported_with_its_json_path() -> None:
    event = copy.deepcopy(SEED_EVENT)
    event["profile_data"]["email"] = "not-an-email"
    del event["profile_data"]["name"]
    event["timestamp"] = "2025-02-30T10:00:00Z"  # no 30 February
    del event["user_id"]
    result = validate_payload(SchemaType.JSON, TEXT, event)
    assert not result.is_valid
    assert [e.path for e in result.validation_errors] == [
        "$.profile_data.email", "$.profile_data.name", "$.timestamp", "$.user_id"]
    assert all(e.rule is None for e in result.validation_errors)


def test_type_error_path_inside_array() -> None:
    text = canonical_schema_text(SchemaType.JSON, {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {
            "type": "object", "properties": {"qty": {"type": "integer"}}}}}})
    result = validate_payload(SchemaType.JSON, text, {"items": [{"qty": 1}, {"qty": "two"}]})
    [error] = result.validation_errors
    assert error.path == "$.items[1].qty"
    assert "integer" in error.message


@pytest.mark.parametrize(("value", "ok"), [
    ("john.doe@company.com", True), ("no-at-sign", False), ("a@b", False), ("a b@c.com", False),
])
def test_email_format(value: str, ok: bool) -> None:
    assert is_email(value) is ok


@pytest.mark.parametrize(("value", "ok"), [
    ("2025-01-26T10:30:00Z", True), ("2025-01-26T10:30:00.123+02:00", True),
    ("2025-01-26", False), ("2025-13-01T00:00:00Z", False), ("2025-02-29T00:00:00Z", False),
    ("2024-02-29T00:00:00Z", True), ("yesterday", False),
])
def test_date_time_format(value: str, ok: bool) -> None:
    assert is_date_time(value) is ok


@pytest.mark.parametrize(("schema", "fast"), [
    (SEED_SCHEMA, True),
    ({"type": "array", "prefixItems": [{"type": "string"}]}, False),
    ({"$defs": {"a": {"type": "string"}}, "$ref": "#/$defs/a", "minLength": 2}, False),
    ({"type": "object", "unevaluatedProperties": False}, False),
    ({"type": "object", "properties": {"x": {"dependentRequired": {"a": ["b"]}}}}, False),
    ({"type": "array", "items": [{"type": "string"}]}, False),
])
def test_fast_engine_only_where_drafts_agree(schema: dict[str, Any], fast: bool) -> None:
    assert fast_path_supported(schema) is fast


def test_2020_12_only_keywords_are_enforced() -> None:
    text = canonical_schema_text(SchemaType.JSON, {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]})
    assert validate_payload(SchemaType.JSON, text, ["a", 1]).is_valid
    result = validate_payload(SchemaType.JSON, text, ["a", "b"])
    assert [e.path for e in result.validation_errors] == ["$[1]"]


def test_json_path_quotes_odd_keys() -> None:
    assert json_path(["a", 0, "b c", "it's"]) == "$.a[0]['b c']['it\\'s']"


def test_business_rules_run_after_a_valid_schema() -> None:
    rules = [BusinessRule(name="company_mail", description="Company addresses only",
                          rule="profile_data.email.endsWith('@company.com')")]
    assert validate_payload(SchemaType.JSON, TEXT, SEED_EVENT, rules).is_valid
    event = copy.deepcopy(SEED_EVENT)
    event["profile_data"]["email"] = "john@gmail.com"
    result = validate_payload(SchemaType.JSON, TEXT, event, rules)
    assert [(e.path, e.rule, e.message) for e in result.validation_errors] == [
        ("$", "company_mail", "Company addresses only")]


AVRO = {
    "type": "record", "name": "Order", "namespace": "com.acme",
    "fields": [
        {"name": "order_id", "type": "string"},
        {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [
            {"name": "email", "type": "string"}]}},
        {"name": "lines", "type": {"type": "array", "items": {
            "type": "record", "name": "Line", "fields": [{"name": "qty", "type": "int"}]}}},
    ],
}
AVRO_TEXT = canonical_schema_text(SchemaType.AVRO, json.dumps(AVRO))


def test_avro_valid() -> None:
    payload = {"order_id": "o1", "customer": {"email": "a@b.co"}, "lines": [{"qty": 1}]}
    assert validate_payload(SchemaType.AVRO, AVRO_TEXT, payload).is_valid


@pytest.mark.parametrize(("payload", "path"), [
    ({"order_id": "o1", "customer": {"email": 3}, "lines": []}, "$.customer.email"),
    ({"order_id": "o1", "customer": {"email": "x"}, "lines": [{"qty": 1}, {"qty": "2"}]},
     "$.lines[1].qty"),
    ({"order_id": 7, "customer": {"email": "x"}, "lines": []}, "$.order_id"),
])
def test_avro_error_path(payload: dict[str, Any], path: str) -> None:
    result = validate_payload(SchemaType.AVRO, AVRO_TEXT, payload)
    assert not result.is_valid
    assert [e.path for e in result.validation_errors] == [path]
