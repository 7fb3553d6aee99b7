"""JSON Schema compatibility matrix (Confluent semantics) and the reasons given."""

from __future__ import annotations

import json
from typing import Any

import pytest

from esb.schemas import CompatibilityLevel, Direction, SchemaType, check_compatibility
from esb.schemas.json_compat import diff_json_schemas
from esb.schemas.parsing import canonical_schema_text


def obj(props: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props, **extra}
    if required:
        schema["required"] = required
    return schema


S = {"type": "string"}
INT = {"type": "integer"}
STRICT = obj({"a": S}, ["a"])
LOOSE = obj({"a": S})

# (name, history oldest first, new, backward, forward, backward_transitive, forward_transitive)
CASES = [
    ("required dropped", [STRICT], LOOSE, True, False, True, False),
    ("required added", [LOOSE], STRICT, False, True, False, True),
    ("type changed", [obj({"a": S})], obj({"a": INT}), False, False, False, False),
    ("integer widened to number", [obj({"a": INT})], obj({"a": {"type": "number"}}),
     True, False, True, False),
    ("enum value added", [obj({"c": {"enum": ["USD", "EUR"]}})],
     obj({"c": {"enum": ["USD", "EUR", "GBP"]}}), True, False, True, False),
    ("closed model, optional property added",
     [obj({"a": S}, additionalProperties=False)],
     obj({"a": S, "b": INT}, additionalProperties=False), True, False, True, False),
    ("open model, optional property added", [obj({"a": S})], obj({"a": S, "b": INT}),
     False, True, False, True),
    ("nested type changed", [obj({"p": obj({"email": S})})], obj({"p": obj({"email": INT})}),
     False, False, False, False),
    ("array items made nullable", [obj({"t": {"type": "array", "items": S}})],
     obj({"t": {"type": "array", "items": {"type": ["string", "null"]}}}),
     True, False, True, False),
    ("additional properties closed", [obj({"a": S})], obj({"a": S}, additionalProperties=False),
     False, True, False, True),
    ("format added (asserted by our validator)", [obj({"e": S})],
     obj({"e": {"type": "string", "format": "email"}}), False, True, False, True),
    # latest-only passes, transitive fails: v1 numbers are not integers-or-strings
    ("transitive backward", [{"type": "number"}, {"type": "integer"}],
     {"type": ["integer", "string"]}, True, False, False, False),
    # latest-only passes, transitive fails: v3 allows 0.5, which v1 (integer) rejects
    ("transitive forward", [{"type": "integer"}, {"type": "number"}],
     {"type": "number", "minimum": 0}, False, True, False, False),
]


def expected(level: CompatibilityLevel, b: bool, f: bool, bt: bool, ft: bool) -> bool:
    return {
        CompatibilityLevel.NONE: True,
        CompatibilityLevel.BACKWARD: b,
        CompatibilityLevel.FORWARD: f,
        CompatibilityLevel.FULL: b and f,
        CompatibilityLevel.BACKWARD_TRANSITIVE: bt,
        CompatibilityLevel.FORWARD_TRANSITIVE: ft,
        CompatibilityLevel.FULL_TRANSITIVE: bt and ft,
    }[level]


def canon(schema: Any) -> str:
    return canonical_schema_text(SchemaType.JSON, json.dumps(schema))


@pytest.mark.parametrize("level", list(CompatibilityLevel))
@pytest.mark.parametrize(("name", "history", "new", "b", "f", "bt", "ft"), CASES,
                         ids=[c[0] for c in CASES])
def test_json_matrix(name: str, history: list[Any], new: Any, b: bool, f: bool, bt: bool,
                     ft: bool, level: CompatibilityLevel) -> None:
    previous = [(i + 1, canon(s)) for i, s in enumerate(history)]
    result = check_compatibility(SchemaType.JSON, canon(new), previous, level)
    assert result.is_compatible is expected(level, b, f, bt, ft), result.messages
    assert bool(result.issues) is not result.is_compatible


def test_reason_names_nested_path_and_change() -> None:
    old = obj({"profile_data": obj({"email": S})})
    new = obj({"profile_data": obj({"email": INT})})
    result = check_compatibility(SchemaType.JSON, canon(new), [(1, canon(old))],
                                 CompatibilityLevel.FULL)
    assert {(i.direction, i.path) for i in result.issues} == {
        (Direction.BACKWARD, "$.profile_data.email"), (Direction.FORWARD, "$.profile_data.email")}
    assert all(i.message == "type changed from string to integer" for i in result.issues)
    assert all(i.against_version == 1 for i in result.issues)


def test_required_reason_points_at_the_property() -> None:
    result = check_compatibility(SchemaType.JSON, canon(STRICT), [(1, canon(LOOSE))],
                                 CompatibilityLevel.BACKWARD)
    assert [(i.path, i.message) for i in result.issues] == [
        ("$.a", "property 'a' became required")]


def test_array_item_reason_path() -> None:
    old = obj({"tags": {"type": "array", "items": obj({"k": S})}})
    new = obj({"tags": {"type": "array", "items": obj({"k": INT})}})
    result = check_compatibility(SchemaType.JSON, canon(new), [(1, canon(old))],
                                 CompatibilityLevel.BACKWARD)
    assert [i.path for i in result.issues] == ["$.tags[*].k"]


def test_diff_classifies_each_change() -> None:
    old = obj({"a": S, "c": {"enum": ["x", "y"]}, "gone": INT}, ["a"], additionalProperties=False)
    new = obj({"a": S, "c": {"enum": ["x"]}, "b": INT}, ["a", "b"], additionalProperties=False)
    changes = {(c.path, c.kind): c.breaks for c in diff_json_schemas(old, new)}
    assert changes[("$.c", "enum")] == [Direction.BACKWARD]
    assert changes[("$.b", "required")] == [Direction.BACKWARD]
    assert changes[("$.b", "property_added")] == [Direction.FORWARD]
    assert changes[("$.gone", "property_removed")] == [Direction.BACKWARD]


def test_identical_schemas_have_no_changes() -> None:
    assert diff_json_schemas(STRICT, json.loads(json.dumps(STRICT))) == []
