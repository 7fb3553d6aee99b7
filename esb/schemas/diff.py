"""What changed between two versions of a schema, for the evolution history.

JSON Schema uses the structural diff of :mod:`esb.schemas.json_compat`. Avro gets a field-level
diff of records (recursively), enums and type changes, each tagged with the direction it breaks
according to Avro's resolution rules (checked with Avro's own checker where types changed).
"""

from __future__ import annotations

import json
from typing import Any

import avro.compatibility
import avro.errors
import avro.schema

from esb.schemas.json_compat import diff_json_schemas
from esb.schemas.models import Direction, SchemaChange, SchemaType
from esb.schemas.parsing import dumps_canonical, load_canonical


def diff_schemas(schema_type: SchemaType, old_text: str, new_text: str) -> list[SchemaChange]:
    old, new = load_canonical(old_text), load_canonical(new_text)
    if schema_type is SchemaType.JSON:
        return diff_json_schemas(old, new)
    out: list[SchemaChange] = []
    _diff_avro(old, new, "$", out)
    return out


def _diff_avro(old: Any, new: Any, path: str, out: list[SchemaChange]) -> None:
    if dumps_canonical(old) == dumps_canonical(new):
        return
    if _is(old, "record") and _is(new, "record"):
        _diff_record(old, new, path, out)
    elif _is(old, "enum") and _is(new, "enum"):
        removed = [s for s in old["symbols"] if s not in new["symbols"]]
        added = [s for s in new["symbols"] if s not in old["symbols"]]
        if removed:
            _add(out, path, "enum", f"enum symbols removed: {', '.join(removed)}",
                 [Direction.BACKWARD])
        if added:
            _add(out, path, "enum", f"enum symbols added: {', '.join(added)}",
                 [Direction.FORWARD])
    elif _is(old, "array") and _is(new, "array"):
        _diff_avro(old["items"], new["items"], f"{path}[*]", out)
    elif _is(old, "map") and _is(new, "map"):
        _diff_avro(old["values"], new["values"], f"{path}.*", out)
    else:
        _add(out, path, "type",
             f"type changed from {_type_name(old)} to {_type_name(new)}", _type_breaks(old, new))


def _diff_record(old: dict[str, Any], new: dict[str, Any], path: str,
                 out: list[SchemaChange]) -> None:
    old_fields = {f["name"]: f for f in old.get("fields", [])}
    new_fields = {f["name"]: f for f in new.get("fields", [])}
    renamed: set[str] = set()
    for name, field in new_fields.items():
        source = next((a for a in field.get("aliases", []) if a in old_fields), None)
        if name in old_fields:
            _diff_avro(old_fields[name]["type"], field["type"], f"{path}.{name}", out)
        elif source is not None:
            renamed.add(source)
            # The new reader finds the old field by alias; an old reader cannot find the new name.
            _add(out, f"{path}.{name}", "field_renamed", f"field '{source}' renamed to '{name}'",
                 [] if "default" in old_fields[source] else [Direction.FORWARD])
            _diff_avro(old_fields[source]["type"], field["type"], f"{path}.{name}", out)
        else:
            breaks = [] if "default" in field else [Direction.BACKWARD]
            suffix = "with a default" if "default" in field else "without a default"
            _add(out, f"{path}.{name}", "field_added", f"field '{name}' added {suffix}", breaks)
    for name, field in old_fields.items():
        if name in new_fields or name in renamed:
            continue
        breaks = [] if "default" in field else [Direction.FORWARD]
        _add(out, f"{path}.{name}", "field_removed", f"field '{name}' removed", breaks)


def _is(schema: Any, kind: str) -> bool:
    return isinstance(schema, dict) and schema.get("type") == kind


def _type_name(schema: Any) -> str:
    if isinstance(schema, list):
        return "union[" + ", ".join(_type_name(s) for s in schema) + "]"
    if isinstance(schema, dict):
        return str(schema.get("name") or schema.get("type"))
    return str(schema)


def _type_breaks(old: Any, new: Any) -> list[Direction]:
    """Avro's verdict for a changed sub-schema; both directions when it cannot be judged alone."""
    try:
        old_parsed = avro.schema.parse(json.dumps(old))
        new_parsed = avro.schema.parse(json.dumps(new))
    except avro.errors.AvroException:
        return [Direction.BACKWARD, Direction.FORWARD]
    incompatible = avro.compatibility.SchemaCompatibilityType.incompatible
    breaks = []
    checker = avro.compatibility.ReaderWriterCompatibilityChecker
    if checker().get_compatibility(new_parsed, old_parsed).compatibility is incompatible:
        breaks.append(Direction.BACKWARD)
    if checker().get_compatibility(old_parsed, new_parsed).compatibility is incompatible:
        breaks.append(Direction.FORWARD)
    return breaks


def _add(out: list[SchemaChange], path: str, kind: str, message: str,
         breaks: list[Direction]) -> None:
    out.append(SchemaChange(path=path, kind=kind, message=message, breaks=breaks))
