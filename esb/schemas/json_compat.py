"""JSON Schema compatibility: ``jsoncompat`` for the verdict, a structural diff for the reasons.

Confluent semantics: BACKWARD means a consumer using the new schema reads data produced with the
old one, i.e. every value the old schema accepts the new one accepts too (``jsoncompat`` role
"deserializer"); FORWARD is the reverse (role "serializer").

What ``jsoncompat`` 0.3 really does (probed): it answers only a boolean, treats ``format`` and
``pattern`` as not constraining (so adding ``"format": "email"`` counts as compatible), and
raises ``ValueError`` for features it cannot decide (e.g. a non-integral ``multipleOf``). So:

* the reasons come from :func:`diff_json_schemas`, which names the data path and the change;
* because our validator asserts ``format`` and ``pattern``, a change to either that breaks the
  direction makes the pair incompatible even when ``jsoncompat`` says yes;
* when ``jsoncompat`` cannot decide, the structural diff decides alone.
"""

from __future__ import annotations

from typing import Any

import jsoncompat

from esb.schemas.models import CompatibilityIssue, Direction, SchemaChange
from esb.schemas.parsing import dumps_canonical, load_canonical

_ROLE = {Direction.BACKWARD: "deserializer", Direction.FORWARD: "serializer"}
# Keywords our validator enforces but jsoncompat does not consider.
_ENFORCED_BY_US_ONLY = frozenset({"format", "pattern"})
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_HANDLED = frozenset(
    {"type", "enum", "const", "required", "properties", "additionalProperties", "items",
     "format", "pattern", *_LOWER_BOUNDS, *_UPPER_BOUNDS}
)
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "default", "examples", "deprecated",
     "readOnly", "writeOnly", "$defs", "definitions", "$anchor"}
)
_NARROWS = [Direction.BACKWARD]  # new accepts less: old data may not be readable by the new
_WIDENS = [Direction.FORWARD]  # new accepts more: new data may not be readable by the old
_BOTH = [Direction.BACKWARD, Direction.FORWARD]


def json_issues(
    new_text: str, old_text: str, direction: Direction, against_version: int | None = None
) -> list[CompatibilityIssue]:
    """Why ``new_text`` is not ``direction``-compatible with ``old_text`` (empty: compatible)."""
    changes = diff_json_schemas(load_canonical(old_text), load_canonical(new_text))
    breaking = [c for c in changes if direction in c.breaks]
    try:
        compatible = jsoncompat.check_compat(old_text, new_text, _ROLE[direction])
    except ValueError:
        compatible = not breaking
    if compatible:
        breaking = [c for c in breaking if c.kind.split(":")[0] in _ENFORCED_BY_US_ONLY]
        if not breaking:
            return []
    issues = [
        CompatibilityIssue(direction=direction, against_version=against_version, path=c.path,
                           message=c.message, kind=c.kind)
        for c in breaking
    ]
    if not issues:
        verb = "the new schema rejects" if direction is Direction.BACKWARD else "the old rejects"
        issues.append(CompatibilityIssue(
            direction=direction, against_version=against_version, path="$", kind="semantic",
            message=f"jsoncompat found values that {verb} "
                    f"(no structural difference explains it; check combinators and $ref)",
        ))
    return issues


# --------------------------------------------------------------------------- structural diff


def diff_json_schemas(old: Any, new: Any) -> list[SchemaChange]:
    """Every structural difference from ``old`` to ``new``, each with the directions it breaks."""
    out: list[SchemaChange] = []
    _diff(_as_dict(old), _as_dict(new), "$", out)
    return out


def _as_dict(schema: Any) -> dict[str, Any]:
    if schema is True or schema is None:
        return {}
    if schema is False:
        return {"not": {}}
    return schema if isinstance(schema, dict) else {}


def _add(out: list[SchemaChange], path: str, kind: str, message: str,
         breaks: list[Direction]) -> None:
    out.append(SchemaChange(path=path, kind=kind, message=message, breaks=list(breaks)))


def _diff(old: dict[str, Any], new: dict[str, Any], path: str, out: list[SchemaChange]) -> None:
    if old == new:
        return
    _diff_type(old, new, path, out)
    _diff_values(old, new, path, out)
    _diff_required(old, new, path, out)
    _diff_properties(old, new, path, out)
    _diff_additional(old, new, path, out)
    if isinstance(old.get("items"), dict | bool) or isinstance(new.get("items"), dict | bool):
        _diff(_as_dict(old.get("items")), _as_dict(new.get("items")), f"{path}[*]", out)
    _diff_bounds(old, new, path, out)
    _diff_assertions(old, new, path, out)
    for key in sorted((set(old) | set(new)) - _HANDLED - _ANNOTATIONS):
        if dumps_canonical(old.get(key)) != dumps_canonical(new.get(key)):
            _add(out, path, f"keyword:{key}",
                 f"'{key}' changed (not analysed structurally)", _BOTH)
    tuple_items = isinstance(old.get("items"), list) or isinstance(new.get("items"), list)
    if tuple_items and dumps_canonical(old.get("items")) != dumps_canonical(new.get("items")):
        _add(out, path, "keyword:items", "'items' changed (not analysed structurally)", _BOTH)


def _type_set(schema: dict[str, Any]) -> set[str] | None:
    raw = schema.get("type")
    if raw is None:
        return None
    types = {raw} if isinstance(raw, str) else set(raw)
    if "number" in types:
        types.add("integer")
    return types


def _fmt_types(types: set[str] | None) -> str:
    if types is None:
        return "any"
    shown = sorted(types - {"integer"} if "number" in types else types)
    return "/".join(shown)


def _diff_type(old: dict[str, Any], new: dict[str, Any], path: str,
               out: list[SchemaChange]) -> None:
    old_types, new_types = _type_set(old), _type_set(new)
    if old_types == new_types:
        return
    breaks: list[Direction] = []
    if new_types is not None and (old_types is None or old_types - new_types):
        breaks.append(Direction.BACKWARD)
    if old_types is not None and (new_types is None or new_types - old_types):
        breaks.append(Direction.FORWARD)
    _add(out, path, "type",
         f"type changed from {_fmt_types(old_types)} to {_fmt_types(new_types)}", breaks)


def _diff_values(old: dict[str, Any], new: dict[str, Any], path: str,
                 out: list[SchemaChange]) -> None:
    for key in ("enum", "const"):
        if key not in old and key not in new:
            continue
        old_vals = _value_set(old, key)
        new_vals = _value_set(new, key)
        if old_vals == new_vals:
            continue
        if old_vals is None:
            _add(out, path, key, f"{key} restriction added: {sorted(new_vals or ())}", _NARROWS)
        elif new_vals is None:
            _add(out, path, key, f"{key} restriction removed", _WIDENS)
        else:
            removed, added = sorted(old_vals - new_vals), sorted(new_vals - old_vals)
            if removed:
                _add(out, path, key, f"{key} values removed: {', '.join(removed)}", _NARROWS)
            if added:
                _add(out, path, key, f"{key} values added: {', '.join(added)}", _WIDENS)


def _value_set(schema: dict[str, Any], key: str) -> set[str] | None:
    if key not in schema:
        return None
    values = schema[key] if key == "enum" else [schema[key]]
    return {dumps_canonical(v) for v in values}


def _diff_required(old: dict[str, Any], new: dict[str, Any], path: str,
                   out: list[SchemaChange]) -> None:
    old_req, new_req = set(old.get("required", ())), set(new.get("required", ()))
    for name in sorted(new_req - old_req):
        _add(out, f"{path}.{name}", "required", f"property '{name}' became required", _NARROWS)
    for name in sorted(old_req - new_req):
        _add(out, f"{path}.{name}", "required", f"property '{name}' is no longer required",
             _WIDENS)


def _additional(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The constraint on properties not listed; None when they are forbidden."""
    value = schema.get("additionalProperties", True)
    if value is False:
        return None
    return _as_dict(value)


def _directions(old: dict[str, Any], new: dict[str, Any]) -> list[Direction]:
    found: set[Direction] = set()
    for change in diff_json_schemas(old, new):
        found.update(change.breaks)
    return [d for d in Direction if d in found]


def _diff_properties(old: dict[str, Any], new: dict[str, Any], path: str,
                     out: list[SchemaChange]) -> None:
    old_props: dict[str, Any] = old.get("properties", {})
    new_props: dict[str, Any] = new.get("properties", {})
    for name in sorted(set(old_props) | set(new_props)):
        sub = f"{path}.{name}"
        if name in old_props and name in new_props:
            _diff(_as_dict(old_props[name]), _as_dict(new_props[name]), sub, out)
        elif name in new_props:
            before = _additional(old)
            if before is None:
                _add(out, sub, "property_added",
                     f"property '{name}' added (the old schema forbade additional properties)",
                     _WIDENS)
            else:
                _add(out, sub, "property_added",
                     f"property '{name}' added (the old schema accepted any value there)",
                     _directions(before, _as_dict(new_props[name])))
        else:
            after = _additional(new)
            if after is None:
                _add(out, sub, "property_removed",
                     f"property '{name}' removed (the new schema forbids additional properties)",
                     _NARROWS)
            else:
                _add(out, sub, "property_removed",
                     f"property '{name}' removed (the new schema accepts any value there)",
                     _directions(_as_dict(old_props[name]), after))


def _diff_additional(old: dict[str, Any], new: dict[str, Any], path: str,
                     out: list[SchemaChange]) -> None:
    before, after = _additional(old), _additional(new)
    if before == after:
        return
    if after is None:
        _add(out, path, "additionalProperties", "additional properties are no longer allowed",
             _NARROWS)
    elif before is None:
        _add(out, path, "additionalProperties", "additional properties are now allowed", _WIDENS)
    else:
        _diff(before, after, f"{path}.*", out)


def _diff_bounds(old: dict[str, Any], new: dict[str, Any], path: str,
                 out: list[SchemaChange]) -> None:
    for key in (*_LOWER_BOUNDS, *_UPPER_BOUNDS):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        lower = key in _LOWER_BOUNDS
        tighter = after is not None and (
            before is None or (after > before if lower else after < before)
        )
        breaks = _NARROWS if tighter else _WIDENS
        _add(out, path, key, f"{key} changed from {before} to {after}", breaks)


def _diff_assertions(old: dict[str, Any], new: dict[str, Any], path: str,
                     out: list[SchemaChange]) -> None:
    for key in ("format", "pattern"):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if before is None:
            breaks = _NARROWS
        elif after is None:
            breaks = _WIDENS
        else:
            breaks = _BOTH
        _add(out, path, key, f"{key} changed from {before!r} to {after!r}", breaks)
