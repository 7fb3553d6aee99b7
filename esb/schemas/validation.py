"""Validate an event payload against a registered schema (JSON Schema or Avro) and its rules.

JSON Schema: measured here on seed 001's ~210-byte ``user.profile_updated`` event, a compiled
``fastjsonschema`` validator takes ~3.7 µs against ~58 µs for ``jsonschema``'s
``Draft202012Validator.is_valid``. fastjsonschema implements draft-07 keywords only, so it answers
the valid path only for schemas whose keywords mean the same in draft-07 and 2020-12 (see
``_FAST_SAFE_KEYWORDS``); other schemas use ``jsonschema`` throughout. When the fast check fails,
``jsonschema`` collects every error with its path (fastjsonschema stops at the first).

Formats ``email``, ``date-time`` and ``regex`` are asserted with the same functions in both
engines, so the engines agree on them (``jsonschema`` alone would skip ``date-time`` without
``rfc3339-validator``). Validators are compiled once per canonical schema text and cached.

Tenant regexes (``pattern``, ``patternProperties`` names, ``format: regex``) run on RE2, never on
Python's backtracking ``re`` (ADR 0010): ``^(a+)+$`` against a 10k-character non-match takes
milliseconds instead of forever. ``jsonschema`` gets RE2 versions of the four keywords that
search regexes; in a ``fastjsonschema`` validator the table of compiled patterns its generated
code searches is filled with RE2 programs (and the fast path is dropped if that table holds
anything else). The registry refuses patterns RE2 cannot compile (see ``parsing``); one that
arrives anyway fails validation rather than falling back to ``re``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import fastavro
import fastavro.validation
import fastjsonschema
import fastjsonschema.draft07
import jsonschema
import jsonschema.validators
from jsonschema.exceptions import ValidationError

from esb.globs import PatternError, linear_regex, regex_error
from esb.schemas.models import (
    BusinessRule,
    FieldError,
    SchemaType,
    SchemaVersion,
    ValidationResult,
)
from esb.schemas.parsing import load_canonical, schema_patterns
from esb.schemas.rules import evaluate_rules

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$"
)


def is_email(value: Any) -> bool:
    return not isinstance(value, str) or bool(_EMAIL.match(value))


def is_date_time(value: Any) -> bool:
    """RFC 3339 ``date-time``; the calendar is checked too (no 2025-02-30)."""
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.match(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def is_regex(value: Any) -> bool:
    """``format: regex``: a pattern the bus could run, i.e. one RE2 compiles (not cached: data)."""
    return not isinstance(value, str) or regex_error(value) is None


FORMAT_CHECKS: dict[str, Callable[[Any], bool]] = {
    "email": is_email, "date-time": is_date_time, "regex": is_regex}


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker()
    for name, check in FORMAT_CHECKS.items():
        checker.checks(name)(check)
    return checker


_FORMAT_CHECKER = _format_checker()

# Keywords with identical meaning in draft-07 (fastjsonschema) and 2020-12.
_FAST_SAFE_KEYWORDS = frozenset(
    {"type", "enum", "const", "allOf", "anyOf", "oneOf", "not", "if", "then", "else",
     "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
     "exclusiveMaximum", "multipleOf", "minItems", "maxItems", "uniqueItems", "items",
     "contains", "minProperties", "maxProperties", "required", "properties",
     "patternProperties", "additionalProperties", "propertyNames", "$defs", "definitions",
     "$ref", "$schema", "$comment", "title", "description", "default", "examples",
     "deprecated", "readOnly", "writeOnly"}
)
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions")
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SUBSCHEMAS = ("not", "if", "then", "else", "items", "contains", "additionalProperties",
               "propertyNames")


def fast_path_supported(schema: Any) -> bool:
    """True when fastjsonschema's draft-07 reading of ``schema`` equals the 2020-12 one."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict):
        return False
    if not set(schema) <= _FAST_SAFE_KEYWORDS:
        return False
    if "$ref" in schema:
        ref = schema["$ref"]
        # draft-07 ignores keywords beside $ref; 2020-12 applies them.
        if not isinstance(ref, str) or not ref.startswith("#"):
            return False
        if set(schema) - {"$ref", "$comment", "title", "description", "default", "examples"}:
            return False
    if isinstance(schema.get("items"), list):
        return False  # tuple form: prefixItems in 2020-12
    for key in _SUBSCHEMA_MAPS:
        if not all(fast_path_supported(s) for s in (schema.get(key) or {}).values()):
            return False
    for key in _SUBSCHEMA_LISTS:
        if not all(fast_path_supported(s) for s in schema.get(key) or ()):
            return False
    return all(fast_path_supported(schema[key]) for key in _SUBSCHEMAS if key in schema)


# --------------------------------------------------------------------------- RE2 keywords


def _search(pattern: str, text: str) -> bool | ValidationError:
    """RE2 search; an uncompilable pattern is an error on the instance, never a fallback."""
    try:
        return linear_regex(pattern).search(text)
    except PatternError as exc:
        return ValidationError(f"pattern {pattern!r} cannot be evaluated: {exc}")


def _re2_pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Iterable[Any]:
    if validator.is_type(instance, "string"):
        found = _search(patrn, instance)
        if isinstance(found, ValidationError):
            yield found
        elif not found:
            yield ValidationError(f"{instance!r} does not match {patrn!r}")


def _re2_pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any,
                            schema: Any) -> Iterable[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            found = _search(pattern, key)
            if isinstance(found, ValidationError):
                yield found
                break
            if found:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _matches_any(patterns: Iterable[str], key: str) -> bool:
    return any(_search(pattern, key) is True for pattern in patterns)


def _re2_additional_properties(validator: Any, aP: Any, instance: Any,
                               schema: Any) -> Iterable[Any]:
    """``jsonschema``'s ``additionalProperties``, with ``patternProperties`` matched by RE2."""
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    extras = {key for key in instance
              if key not in properties and not _matches_any(patterns, key)}
    if validator.is_type(aP, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], aP, path=extra)
    elif not aP and extras:
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            joined = ", ".join(repr(each) for each in sorted(extras))
            listed = ", ".join(repr(each) for each in sorted(patterns))
            yield ValidationError(f"{joined} {verb} not match any of the regexes: {listed}")
        else:
            listed = ", ".join(repr(each) for each in sorted(extras, key=str))
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(
                f"Additional properties are not allowed ({listed} {verb} unexpected)")


def _is_valid(errors: Iterable[Any]) -> bool:
    return next(iter(errors), None) is None


def _evaluated_keys(validator: Any, instance: dict[str, Any], schema: Any) -> set[str]:
    """Keys evaluated by ``schema`` (``jsonschema._utils``' 2020-12 rules, RE2 for patterns)."""
    if not isinstance(schema, dict):
        return set()
    keys: set[str] = set()
    for ref_keyword in ("$ref", "$dynamicRef"):
        ref = schema.get(ref_keyword)
        if ref is not None:
            resolved = validator._resolver.lookup(ref)
            keys |= _evaluated_keys(
                validator.evolve(schema=resolved.contents, _resolver=resolved.resolver),
                instance, resolved.contents)
    properties = schema.get("properties")
    if isinstance(properties, dict):
        keys |= properties.keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        if (subschema := schema.get(keyword)) is not None:
            keys |= {key for key, value in instance.items()
                     if _is_valid(validator.descend(value, subschema))}
    patterns = schema.get("patternProperties") or {}
    keys |= {key for key in instance if _matches_any(patterns, key)}
    for name, subschema in (schema.get("dependentSchemas") or {}).items():
        if name in instance:
            keys |= _evaluated_keys(validator, instance, subschema)
    for keyword in ("allOf", "oneOf", "anyOf"):
        for subschema in schema.get(keyword, ()):
            if _is_valid(validator.descend(instance, subschema)):
                keys |= _evaluated_keys(validator, instance, subschema)
    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            keys |= _evaluated_keys(validator, instance, schema["if"])
            if "then" in schema:
                keys |= _evaluated_keys(validator, instance, schema["then"])
        elif "else" in schema:
            keys |= _evaluated_keys(validator, instance, schema["else"])
    return keys


def _re2_unevaluated_properties(validator: Any, uP: Any, instance: Any,
                                schema: Any) -> Iterable[Any]:
    if not validator.is_type(instance, "object"):
        return
    evaluated = _evaluated_keys(validator, instance, schema)
    unevaluated = [key for key in instance if key not in evaluated
                   and not _is_valid(validator.descend(instance[key], uP, path=key,
                                                       schema_path=key))]
    if unevaluated:
        listed = ", ".join(repr(each) for each in sorted(unevaluated, key=str))
        verb = "was" if len(unevaluated) == 1 else "were"
        if uP is False:
            yield ValidationError(
                f"Unevaluated properties are not allowed ({listed} {verb} unexpected)")
        else:
            yield ValidationError("Unevaluated properties are not valid under the given schema "
                                  f"({listed} {verb} unevaluated and invalid)")


#: Draft 2020-12 with every regex-searching keyword on RE2.
LinearDraft202012Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    {"pattern": _re2_pattern, "patternProperties": _re2_pattern_properties,
     "additionalProperties": _re2_additional_properties,
     "unevaluatedProperties": _re2_unevaluated_properties},
)

# Keys fastjsonschema uses in REGEX_PATTERNS for its own (library) format regexes.
_FAST_FORMAT_KEYS = frozenset(
    f"{name}_re_pattern" for name in fastjsonschema.draft07.CodeGeneratorDraft07.FORMAT_REGEXS)


def _fast_validator(schema: Any) -> Callable[[Any], Any] | None:
    """A fastjsonschema validator whose tenant regexes are RE2 programs, or None.

    fastjsonschema's generated code searches ``REGEX_PATTERNS[pattern]`` (one entry per
    ``pattern`` value and ``patternProperties`` name); those entries are replaced by RE2. If the
    table holds an entry that is neither a tenant pattern nor a library format regex, or the
    library changes shape, the schema uses ``jsonschema`` (RE2 keywords) instead: never ``re``.
    """
    patterns = {pattern for _, pattern in schema_patterns(schema)}
    try:
        fast = fastjsonschema.compile(schema, formats=FORMAT_CHECKS)
    except Exception:  # definition the code generator cannot handle (e.g. nesting): slow path
        return None
    function = getattr(fast, "func", fast)  # compile() wraps in a partial when given formats
    table = getattr(function, "__globals__", {}).get("REGEX_PATTERNS")
    if not isinstance(table, dict):
        return None
    for key in list(table):
        if key in patterns and key not in _FAST_FORMAT_KEYS:
            try:
                table[key] = linear_regex(key)
            except PatternError:
                return None
        elif key not in _FAST_FORMAT_KEYS or key in patterns:
            return None
    return fast


@dataclass(frozen=True)
class CompiledJsonSchema:
    full: jsonschema.Draft202012Validator
    fast: Callable[[Any], Any] | None

    @property
    def engine(self) -> str:
        return "fastjsonschema" if self.fast is not None else "jsonschema"


@lru_cache(maxsize=1024)
def compiled_json_schema(schema_text: str) -> CompiledJsonSchema:
    schema = load_canonical(schema_text)
    full = LinearDraft202012Validator(schema, format_checker=_FORMAT_CHECKER)
    fast = _fast_validator(schema) if fast_path_supported(schema) else None
    return CompiledJsonSchema(full=full, fast=fast)


def json_path(parts: Iterable[Any]) -> str:
    """``['profile_data', 'email']`` -> ``$.profile_data.email``; indexes as ``[0]``."""
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", str(part)):
            path += f".{part}"
        else:
            escaped = str(part).replace("\\", "\\\\").replace("'", "\\'")
            path += f"['{escaped}']"
    return path


def _jsonschema_error(error: jsonschema.ValidationError) -> FieldError:
    parts = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [
            name for name in error.validator_value
            if name not in error.instance and error.message.startswith(repr(name))
        ]
        if missing:
            parts.append(missing[0])
    return FieldError(path=json_path(parts), message=error.message)


def json_errors(schema_text: str, payload: Any) -> list[FieldError]:
    """All schema errors of ``payload`` (empty when valid)."""
    compiled = compiled_json_schema(schema_text)
    if compiled.fast is not None:
        try:
            compiled.fast(payload)
            return []
        except fastjsonschema.JsonSchemaValueException as first:
            errors = _collect(compiled, payload)
            if errors:
                return errors
            return [FieldError(path=json_path(first.path[1:]), message=first.message)]
    return _collect(compiled, payload)


def _collect(compiled: CompiledJsonSchema, payload: Any) -> list[FieldError]:
    errors = [_jsonschema_error(e) for e in compiled.full.iter_errors(payload)]
    return sorted(errors, key=lambda e: (e.path, e.message))


# --------------------------------------------------------------------------- Avro


@lru_cache(maxsize=1024)
def parsed_avro_schema(schema_text: str) -> Any:
    return fastavro.parse_schema(load_canonical(schema_text))


def avro_errors(schema_text: str, payload: Any) -> list[FieldError]:
    """fastavro validation; the failing field's data path is located in the payload."""
    parsed = parsed_avro_schema(schema_text)
    try:
        fastavro.validation.validate(payload, parsed, raise_errors=True)
        return []
    except fastavro.validation.ValidationError as exc:
        found = []
        for item in exc.errors:
            path = _locate(payload, parsed, item.field, item.datum, "$") or "$"
            found.append(FieldError(
                path=path,
                message=f"{item.datum!r} is not a valid {_avro_type_name(item.schema)}",
            ))
        return found


def _avro_type_name(schema: Any) -> str:
    if isinstance(schema, dict):
        return str(schema.get("name") or schema.get("type"))
    if isinstance(schema, list):
        return " | ".join(_avro_type_name(s) for s in schema)
    return str(schema)


def _locate(datum: Any, schema: Any, field: str, bad: Any, path: str) -> str | None:
    """Find where fastavro's ``record.fullname.field`` failure sits in the payload."""
    if isinstance(schema, list):
        for branch in schema:
            found = _locate(datum, branch, field, bad, path)
            if found:
                return found
        return None
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    if kind == "record" and isinstance(datum, dict):
        for spec in schema["fields"]:
            name = spec["name"]
            value = datum.get(name)
            if f"{schema['name']}.{name}" == field and value == bad:
                return f"{path}.{name}"
            found = _locate(value, spec["type"], field, bad, f"{path}.{name}")
            if found:
                return found
    elif kind == "array" and isinstance(datum, list):
        for index, item in enumerate(datum):
            found = _locate(item, schema["items"], field, bad, f"{path}[{index}]")
            if found:
                return found
    elif kind == "map" and isinstance(datum, dict):
        for key, item in datum.items():
            found = _locate(item, schema["values"], field, bad, json_path([key]).replace(
                "$", path, 1))
            if found:
                return found
    return None


# --------------------------------------------------------------------------- entry point


def validate_payload(
    schema_type: SchemaType,
    schema_text: str,
    payload: Any,
    rules: Iterable[BusinessRule] = (),
    schema_version: str | None = None,
) -> ValidationResult:
    """Schema check, then business rules (only on a schema-valid payload, whose fields exist)."""
    started = time.perf_counter()
    if schema_type is SchemaType.AVRO:
        errors = avro_errors(schema_text, payload)
    else:
        errors = json_errors(schema_text, payload)
    if not errors:
        errors = evaluate_rules(rules, payload)
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    return ValidationResult(
        is_valid=not errors,
        validation_errors=errors,
        schema_version=schema_version,
        validation_time_ms=round(elapsed_ms, 3),
    )


def validate_event(version: SchemaVersion, payload: Any) -> ValidationResult:
    """Validate ``payload`` against a registered version: its schema, then its business rules."""
    return validate_payload(
        version.schema_type,
        version.schema_text,
        payload,
        version.validation_rules.business_rules,
        schema_version=version.schema_version,
    )
