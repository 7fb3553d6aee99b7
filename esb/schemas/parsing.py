"""Check a schema is well formed and give it one canonical text.

The canonical text (JSON with sorted keys, no whitespace) is what the registry compares to decide
"same schema again" and what every cache is keyed by. Avro's Parsing Canonical Form is not used for
identity because it drops defaults and aliases, which change compatibility.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import avro.errors
import avro.schema
import fastavro
import fastavro.schema
import jsonschema
import jsonschema.exceptions

from esb.errors import ValidationFailed
from esb.schemas.models import SchemaType


def _load(definition: Any) -> Any:
    if isinstance(definition, bytes | bytearray):
        definition = definition.decode("utf-8")
    if isinstance(definition, str):
        try:
            return json.loads(definition)
        except json.JSONDecodeError as exc:
            raise ValidationFailed(
                f"schema is not valid JSON: {exc.msg}",
                errors=[{"path": "$", "message": f"invalid JSON at position {exc.pos}"}],
            ) from exc
    return definition


def dumps_canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_schema_text(schema_type: SchemaType, definition: Any) -> str:
    """Validate ``definition`` (object or JSON text) as a schema of ``schema_type``.

    Raises ``ValidationFailed`` (HTTP 422, Confluent's "invalid schema") with the reason.
    """
    loaded = _load(definition)
    if schema_type is SchemaType.JSON:
        _check_json_schema(loaded)
    else:
        _check_avro_schema(loaded)
    return dumps_canonical(loaded)


def _check_json_schema(schema: Any) -> None:
    if not isinstance(schema, dict | bool):
        raise ValidationFailed(
            "a JSON Schema must be an object or a boolean",
            errors=[{"path": "$", "message": f"got {type(schema).__name__}"}],
        )
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        pointer = "/".join(str(p) for p in exc.absolute_path)
        raise ValidationFailed(
            f"invalid JSON Schema: {exc.message}",
            errors=[{"path": f"#/{pointer}", "message": exc.message}],
        ) from exc


def _check_avro_schema(schema: Any) -> None:
    try:
        fastavro.parse_schema(schema)
        avro.schema.parse(dumps_canonical(schema))
    except (avro.errors.AvroException, fastavro.schema.SchemaParseException, ValueError,
            TypeError, KeyError) as exc:
        raise ValidationFailed(
            f"invalid Avro schema: {exc}",
            errors=[{"path": "$", "message": str(exc)}],
        ) from exc


@lru_cache(maxsize=2048)
def load_canonical(schema_text: str) -> Any:
    """Parse a canonical text once; callers must not mutate the result."""
    return json.loads(schema_text)
