"""Check a schema is well formed and give it one canonical text.

The canonical text (JSON with sorted keys, no whitespace) is what the registry compares to decide
"same schema again" and what every cache is keyed by. Avro's Parsing Canonical Form is not used for
identity because it drops defaults and aliases, which change compatibility.

Tenant schemas are also checked for what would hurt the shared worker later (ADR 0010): nesting
deeper than :data:`MAX_SCHEMA_DEPTH` (recursive parsers and code generators would overflow the
stack) and JSON Schema regular expressions RE2 cannot run in linear time (backreferences,
lookaround). Both are refused here, with the JSON pointer of the offending place.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import avro.errors
import avro.schema
import fastavro
import fastavro.schema
import jsonschema
import jsonschema.exceptions

from esb.errors import ValidationFailed
from esb.globs import regex_error
from esb.schemas.models import SchemaType

#: Deepest nesting of objects/arrays a schema document may have. Generous for real schemas
#: (about 30 levels of nested JSON Schema properties or 15 of nested Avro records) and far
#: below what the recursive validators, parsers and code generators survive.
MAX_SCHEMA_DEPTH = 64

# JSON Schema keywords whose values are instance data, never subschemas or regexes.
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})
# Keywords whose value is a map of name -> subschema (patternProperties' names are regexes).
_SCHEMA_MAP_KEYWORDS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})


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
    _check_depth(loaded)
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
    # Before check_schema: it compiles every pattern with Python's re, which is exactly what a
    # hostile pattern must never reach.
    refused = [{"path": pointer, "message": reason}
               for pointer, pattern in schema_patterns(schema)
               if (reason := regex_error(pattern)) is not None]
    if refused:
        raise ValidationFailed(
            f"JSON Schema uses {len(refused)} regular expression(s) that cannot be evaluated in "
            "linear time (RE2 syntax: no backreferences or lookaround)",
            errors=refused,
        )
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        pointer = "/".join(str(p) for p in exc.absolute_path)
        raise ValidationFailed(
            f"invalid JSON Schema: {exc.message}",
            errors=[{"path": f"#/{pointer}", "message": exc.message}],
        ) from exc


def _pointer(parts: list[str]) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _check_depth(document: Any) -> None:
    """Refuse documents nested deeper than :data:`MAX_SCHEMA_DEPTH`; iterative, never recurses."""
    stack: list[tuple[Any, list[str]]] = [(document, [])]
    while stack:
        node, parts = stack.pop()
        if len(parts) > MAX_SCHEMA_DEPTH:
            raise ValidationFailed(
                f"schema is nested more than {MAX_SCHEMA_DEPTH} levels deep",
                errors=[{"path": _pointer(parts[:MAX_SCHEMA_DEPTH + 1]),
                         "message": f"nesting deeper than {MAX_SCHEMA_DEPTH} levels"}],
            )
        if isinstance(node, dict):
            stack.extend((value, [*parts, str(key)]) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, [*parts, str(index)]) for index, value in enumerate(node))


def schema_patterns(schema: Any) -> Iterator[tuple[str, str]]:
    """Every regex of a JSON Schema as ``(JSON pointer, pattern)``: ``pattern`` values and
    ``patternProperties`` names, in every subschema.

    Values of unknown keywords are searched too, since a ``$ref`` may point into them; instance
    data (``const``, ``enum``, ``default``, ``examples``) is not. Expects a depth-checked
    document (see :func:`_check_depth`).
    """
    stack: list[tuple[Any, list[str]]] = [(schema, [])]
    while stack:
        node, parts = stack.pop()
        if isinstance(node, list):
            stack.extend((item, [*parts, str(i)]) for i, item in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        if isinstance(node.get("pattern"), str):
            yield _pointer([*parts, "pattern"]), node["pattern"]
        for key, value in node.items():
            if key in _DATA_KEYWORDS or key == "pattern":
                continue
            if key in _SCHEMA_MAP_KEYWORDS and isinstance(value, dict):
                for name, subschema in value.items():
                    if key == "patternProperties":
                        yield _pointer([*parts, key, name]), name
                    stack.append((subschema, [*parts, key, name]))
            else:
                stack.append((value, [*parts, key]))


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
