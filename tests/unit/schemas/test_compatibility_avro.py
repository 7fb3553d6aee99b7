"""Avro compatibility matrix: schema histories x every level, against Avro's resolution rules."""

from __future__ import annotations

import json
from typing import Any

import pytest

from esb.schemas import CompatibilityLevel, Direction, SchemaType, check_compatibility
from esb.schemas.parsing import canonical_schema_text


def record(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "User", "namespace": "com.acme", "fields": list(fields)}


ID = {"name": "id", "type": "string"}
AGE_DEFAULT = {"name": "age", "type": "int", "default": 0}
AGE = {"name": "age", "type": "int"}
EMAIL = {"name": "email", "type": "string"}
EMAIL_DEFAULT = {"name": "email", "type": "string", "default": ""}

# (name, history oldest first, new, backward, forward, backward_transitive, forward_transitive)
CASES = [
    ("add field with default", [record(ID)], record(ID, AGE_DEFAULT), True, True, True, True),
    ("add field without default", [record(ID)], record(ID, AGE), False, True, False, True),
    ("remove field without default", [record(ID, EMAIL)], record(ID), True, False, True, False),
    ("remove field with default", [record(ID, EMAIL_DEFAULT)], record(ID), True, True, True, True),
    ("int promoted to long", [record({"name": "n", "type": "int"})],
     record({"name": "n", "type": "long"}), True, False, True, False),
    ("string to int", [record({"name": "n", "type": "string"})],
     record({"name": "n", "type": "int"}), False, False, False, False),
    ("enum symbol added", [{"type": "enum", "name": "Color", "symbols": ["RED", "BLUE"]}],
     {"type": "enum", "name": "Color", "symbols": ["RED", "BLUE", "GREEN"]},
     True, False, True, False),
    ("field renamed with alias", [record({"name": "old", "type": "int"})],
     record({"name": "new", "type": "int", "aliases": ["old"]}), True, False, True, False),
    ("field made nullable", [record({"name": "x", "type": "string"})],
     record({"name": "x", "type": ["null", "string"], "default": None}),
     True, False, True, False),
    # latest-only passes, transitive fails (v3 cannot read v1 data: age has no default)
    ("transitive backward", [record(ID), record(ID, AGE_DEFAULT)], record(ID, AGE),
     True, True, False, True),
    # latest-only passes, transitive fails (v1 cannot read v3 data: email has no default in v1)
    ("transitive forward", [record(ID, EMAIL), record(ID, EMAIL_DEFAULT)], record(ID),
     True, True, True, False),
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
    return canonical_schema_text(SchemaType.AVRO, json.dumps(schema))


@pytest.mark.parametrize("level", list(CompatibilityLevel))
@pytest.mark.parametrize(("name", "history", "new", "b", "f", "bt", "ft"), CASES,
                         ids=[c[0] for c in CASES])
def test_avro_matrix(name: str, history: list[Any], new: Any, b: bool, f: bool, bt: bool,
                     ft: bool, level: CompatibilityLevel) -> None:
    previous = [(i + 1, canon(s)) for i, s in enumerate(history)]
    result = check_compatibility(SchemaType.AVRO, canon(new), previous, level)
    assert result.is_compatible is expected(level, b, f, bt, ft), result.messages
    assert bool(result.issues) is not result.is_compatible


def test_transitive_checks_every_version_and_names_the_failing_one() -> None:
    previous = [(1, canon(record(ID))), (2, canon(record(ID, AGE_DEFAULT)))]
    result = check_compatibility(SchemaType.AVRO, canon(record(ID, AGE)), previous,
                                 CompatibilityLevel.BACKWARD_TRANSITIVE)
    assert result.checked_versions == [1, 2]
    assert [i.against_version for i in result.issues] == [1]
    latest_only = check_compatibility(SchemaType.AVRO, canon(record(ID, AGE)), previous,
                                      CompatibilityLevel.BACKWARD)
    assert latest_only.checked_versions == [2]


def test_avro_reason_names_field_path_and_rule() -> None:
    nested_old = record(ID, {"name": "profile", "type": {
        "type": "record", "name": "Profile", "fields": [{"name": "email", "type": "string"}]}})
    nested_new = record(ID, {"name": "profile", "type": {
        "type": "record", "name": "Profile", "fields": [{"name": "email", "type": "int"}]}})
    result = check_compatibility(SchemaType.AVRO, canon(nested_new), [(1, canon(nested_old))],
                                 CompatibilityLevel.BACKWARD)
    [issue] = result.issues
    assert issue.path == "$.profile.email"
    assert issue.kind == "type_mismatch"
    assert issue.direction is Direction.BACKWARD
    assert "int" in issue.message and "string" in issue.message
    assert issue.schema_pointer == "/fields/1/type/fields/0/type"


def test_missing_default_reason() -> None:
    result = check_compatibility(SchemaType.AVRO, canon(record(ID, AGE)), [(1, canon(record(ID)))],
                                 CompatibilityLevel.BACKWARD)
    [issue] = result.issues
    assert issue.path == "$.age"
    assert issue.kind == "reader_field_missing_default_value"
    assert "no default" in issue.message
