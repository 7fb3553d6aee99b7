"""Avro compatibility by Apache Avro's own schema-resolution checker.

``avro.compatibility.ReaderWriterCompatibilityChecker`` is the reference implementation of Avro's
resolution rules (field defaults, numeric promotions, unions, enum symbols, aliases), so we only
translate its answer: each incompatibility becomes a :class:`CompatibilityIssue` whose ``path`` is
the data path (``$.profile.email``) derived from Avro's JSON pointer into the reader schema.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import avro.compatibility
import avro.schema

from esb.schemas.models import CompatibilityIssue, Direction
from esb.schemas.parsing import load_canonical


@lru_cache(maxsize=1024)
def _parsed(schema_text: str) -> avro.schema.Schema:
    return avro.schema.parse(schema_text)


def avro_issues(
    reader_text: str, writer_text: str, direction: Direction, against_version: int | None = None
) -> list[CompatibilityIssue]:
    """Issues preventing ``reader_text`` from reading data written with ``writer_text``."""
    checker = avro.compatibility.ReaderWriterCompatibilityChecker()
    result = checker.get_compatibility(_parsed(reader_text), _parsed(writer_text))
    if result.compatibility is not avro.compatibility.SchemaCompatibilityType.incompatible:
        return []
    # The checker merges messages and locations into sets, so a 1:1 pairing exists only when
    # there is one of each; otherwise every message names all locations.
    pointers = sorted(result.locations)
    kinds = sorted({i.value for i in result.incompatibilities})
    reader_json = load_canonical(reader_text)
    pointer = ", ".join(pointers)
    path = ", ".join(pointer_to_data_path(reader_json, p) for p in pointers)
    return [
        CompatibilityIssue(
            direction=direction,
            against_version=against_version,
            path=path,
            message=_describe(message, kinds),
            kind=kinds[0] if len(kinds) == 1 else ",".join(kinds),
            schema_pointer=pointer,
        )
        for message in sorted(result.messages)
    ]


def _describe(message: str, kinds: list[str]) -> str:
    if kinds == ["reader_field_missing_default_value"]:
        return f"reader field '{message}' has no default and the writer does not write it"
    if kinds == ["missing_enum_symbols"]:
        return f"reader enum lacks writer symbols {message}"
    return message


def pointer_to_data_path(schema: Any, pointer: str) -> str:
    """Turn Avro's pointer (``/fields/1/type/fields/0``) into a data path (``$.profile.email``).

    Best effort: a named type referenced by name stops the walk, leaving the path found so far.
    """
    tokens = [t for t in pointer.split("/") if t]
    path = "$"
    node: Any = schema
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if isinstance(node, dict) and token == "fields" and i + 1 < len(tokens):
            fields = node.get("fields") or []
            index = int(tokens[i + 1])
            if index >= len(fields):
                break
            path += f".{fields[index]['name']}"
            node = fields[index]
            i += 2
            continue
        if isinstance(node, dict) and token in ("type", "items", "values", "symbols"):
            if token == "items":
                path += "[*]"
            elif token == "values":
                path += ".*"
            node = node.get(token)
            i += 1
            continue
        if isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
            i += 1
            continue
        break
    return path
