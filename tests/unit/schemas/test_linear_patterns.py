"""Tenant regexes run in linear time; hostile schemas, Avro bodies and CEL are refused (ADR 0010)."""

from __future__ import annotations

import io
import time
from typing import Any

import fastavro
import pytest

from esb.errors import ExpressionError, InvalidRequest, ValidationFailed
from esb.expressions import MAX_EXPRESSION_CHARS, MAX_EXPRESSION_DEPTH, compile_expression
from esb.schemas.models import SchemaType
from esb.schemas.parsing import MAX_SCHEMA_DEPTH, canonical_schema_text
from esb.schemas.validation import compiled_json_schema, json_errors
from esb.schemas.wire import MAX_AVRO_DEPTH, decode_avro, encode, encode_avro, read_avro

EVIL = "^(a+)+$"


def json_schema(schema: Any) -> str:
    return canonical_schema_text(SchemaType.JSON, schema)


def timed(call: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


# --------------------------------------------------------------------------- JSON Schema


@pytest.mark.parametrize("extra", [{}, {"unevaluatedProperties": False}],
                         ids=["fastjsonschema", "jsonschema"])
def test_catastrophic_pattern_is_linear_on_both_engines(deadline: None, extra: dict) -> None:
    text = json_schema({"type": "object", "properties": {"v": {"type": "string",
                                                               "pattern": EVIL}}, **extra})
    assert compiled_json_schema(text).engine == ("jsonschema" if extra else "fastjsonschema")
    errors, elapsed = timed(lambda: json_errors(text, {"v": "a" * 50_000}))
    assert errors == [] and elapsed < 0.5
    errors, elapsed = timed(lambda: json_errors(text, {"v": "a" * 50_000 + "!"}))
    assert [e.path for e in errors] == ["$.v"] and elapsed < 0.5


@pytest.mark.parametrize("extra", [{}, {"unevaluatedProperties": False}],
                         ids=["fastjsonschema", "jsonschema"])
def test_pattern_properties_and_additional_properties_are_linear(deadline: None,
                                                                 extra: dict) -> None:
    text = json_schema({"type": "object", "patternProperties": {EVIL: {"type": "integer"}},
                        "additionalProperties": False, **extra})
    long_key, bad_key = "a" * 30_000, "a" * 30_000 + "!"
    started = time.perf_counter()
    assert json_errors(text, {long_key: 1}) == []
    assert json_errors(text, {long_key: "not an integer"})  # the key matched: subschema applies
    assert json_errors(text, {bad_key: 1})  # matched no pattern: additional, refused
    assert time.perf_counter() - started < 0.5


def test_unevaluated_and_property_names_are_linear(deadline: None) -> None:
    text = json_schema({"type": "object", "propertyNames": {"pattern": "^(a|a)*$"},
                        "allOf": [{"patternProperties": {EVIL: True}}],
                        "unevaluatedProperties": False})
    started = time.perf_counter()
    assert json_errors(text, {"a" * 30_000: 1}) == []
    assert json_errors(text, {"a" * 30_000 + "!": 1})
    assert time.perf_counter() - started < 0.5


def test_pattern_keeps_json_schema_search_semantics() -> None:
    text = json_schema({"type": "string", "pattern": "b[0-9]"})
    assert json_errors(text, "ab1c") == []  # unanchored search, as before
    assert json_errors(text, "abc")


@pytest.mark.parametrize(("schema", "path"), [
    ({"properties": {"name": {"type": "string", "pattern": r"^(a)\1$"}}},
     "#/properties/name/pattern"),
    ({"patternProperties": {"^(?=x)": {}}}, "#/patternProperties/^(?=x)"),
    ({"$defs": {"a/b": {"pattern": "(?<!a)b"}}}, "#/$defs/a~1b/pattern"),
])
def test_patterns_re2_cannot_run_are_refused_at_registration(schema: dict, path: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        json_schema(schema)
    assert info.value.http_status == 422
    assert "linear time" in info.value.message
    assert [e["path"] for e in info.value.details["errors"]] == [path]


def test_data_keywords_are_not_mistaken_for_patterns() -> None:
    json_schema({"const": {"pattern": r"(a)\1"}, "examples": [{"pattern": "(?=x)"}]})


@pytest.mark.parametrize("extra", [{}, {"unevaluatedProperties": False}],
                         ids=["fastjsonschema", "jsonschema"])
def test_format_regex_means_an_re2_pattern(extra: dict) -> None:
    text = json_schema({"type": "object", "properties": {"r": {"format": "regex"}}, **extra})
    assert json_errors(text, {"r": "^user_[0-9]+$"}) == []
    assert [e.path for e in json_errors(text, {"r": r"(a)\1"})] == ["$.r"]


def test_schema_nested_too_deep_is_refused() -> None:
    schema: dict = {"type": "string"}
    for _ in range(MAX_SCHEMA_DEPTH):
        schema = {"type": "object", "properties": {"a": schema}}
    with pytest.raises(ValidationFailed) as info:
        json_schema(schema)
    assert info.value.details["errors"][0]["path"].startswith("#/properties/a/")


# --------------------------------------------------------------------------- Avro


def zigzag(number: int) -> bytes:
    number = (number << 1) ^ (number >> 63)
    out = bytearray()
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


LINKED = fastavro.parse_schema({"type": "record", "name": "Node", "fields": [
    {"name": "label", "type": "string"}, {"name": "next", "type": ["null", "Node"]}]})


def test_array_of_zero_byte_items_claiming_millions_fails_fast() -> None:
    schema = fastavro.parse_schema({"type": "array", "items": "null"})
    body, elapsed = zigzag(5_000_000), 0.0
    with pytest.raises(ValidationFailed) as info:
        _, elapsed = timed(lambda: read_avro(io.BytesIO(body), schema))
    assert info.value.http_status == 422 and "entries" in info.value.message
    assert read_avro(io.BytesIO(zigzag(3) + b"\x00"), schema) == [None, None, None]
    assert elapsed < 0.1


def test_deeply_nested_recursive_record_fails_fast() -> None:
    body = b"\x00\x02" * 2_000 + b"\x00\x00"  # label "", next = branch 1 … 2000 levels
    started = time.perf_counter()
    with pytest.raises(ValidationFailed, match=f"deeper than {MAX_AVRO_DEPTH}"):
        decode_avro(encode(7, body), LINKED)
    assert time.perf_counter() - started < 0.1
    shallow = encode_avro(7, LINKED, {"label": "a", "next": {"label": "b", "next": None}})
    assert decode_avro(shallow, LINKED) == (7, {"label": "a",
                                                "next": {"label": "b", "next": None}})


def test_string_claiming_more_bytes_than_the_body_fails_fast() -> None:
    with pytest.raises(ValidationFailed) as info:
        decode_avro(encode(7, zigzag(2**50) + b"x"), LINKED)
    assert info.value.details["errors"] == [
        {"path": "$.label", "message": "string claims 1125899906842624 bytes, 1 are left"}]


def test_truncated_body_of_a_plain_schema_is_still_a_bad_request() -> None:
    plain = fastavro.parse_schema({"type": "array", "items": "long"})
    with pytest.raises(InvalidRequest):
        decode_avro(encode(7, zigzag(2**60) + b"\x02"), plain)


def test_avro_schema_nested_too_deep_is_refused_at_registration() -> None:
    schema: Any = "string"
    for level in range(MAX_SCHEMA_DEPTH // 3 + 2):  # three document levels per record
        schema = {"type": "record", "name": f"R{level}", "fields": [{"name": "f",
                                                                      "type": schema}]}
    with pytest.raises(ValidationFailed, match="nested more than"):
        canonical_schema_text(SchemaType.AVRO, schema)


# --------------------------------------------------------------------------- CEL


def test_cel_expression_too_long_is_refused() -> None:
    source = " || ".join(["payload.a == 1"] * (MAX_EXPRESSION_CHARS // 10))
    with pytest.raises(ExpressionError) as info:
        compile_expression(source)
    assert info.value.http_status == 422 and "characters" in info.value.message
    assert len(info.value.details["expression"]) <= 200  # the 422 does not echo it all back


def test_cel_expression_nested_too_deep_is_refused() -> None:
    depth = MAX_EXPRESSION_DEPTH + 1
    with pytest.raises(ExpressionError, match="levels deep") as info:
        compile_expression("(" * depth + "true" + ")" * depth)
    assert info.value.http_status == 422
    shallow = MAX_EXPRESSION_DEPTH
    assert compile_expression("(" * shallow + "true" + ")" * shallow).matches({})


def test_brackets_inside_cel_string_literals_do_not_count() -> None:
    source = "type == '" + "(" * 100 + "' || type == \"[[[[\""
    assert not compile_expression(source).matches({"type": "x"})
