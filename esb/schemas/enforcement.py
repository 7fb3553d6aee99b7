"""Schema enforcement on both publish paths (a ``PayloadChecks`` check).

Which schema applies is decided from headers and the first data byte only, cheaply:

1. data in the Confluent wire format (magic byte 0 + 4-byte id): that registry id. JSON text never
   starts with a NUL byte, so this cannot misfire on plain JSON. An id the tenant does not have is
   a rejection (the producer claims a schema we cannot read);
2. ``ce_schemaid`` (seed ``schema_id``: ``sch_N`` or a numeric id) or ``ce_dataschema`` (a URI
   ending in ``/schemas/ids/N`` or ``sch_N``); unknown ones are ignored (the seed lets producers
   label events freely) and resolution falls through to the type;
3. ``ce_type`` -> subject ``<type>-value``: its latest live version, if active.

No schema -> the event passes untouched. Resolutions are cached per (tenant, key) and the cache is
dropped whenever a registry record is applied; compiled validators are cached by schema text in
:mod:`esb.schemas.validation`, so the steady-state cost is one dict lookup for events without a
schema and a JSON decode plus a compiled validator call for events with one.
"""

from __future__ import annotations

import io
import re
from typing import Any

from esb import jsonsafe
from esb.errors import EsbError, ValidationFailed
from esb.schemas.models import FieldError, SchemaType, SchemaVersion
from esb.schemas.registry import SchemaRegistryState, subject_for_event_type
from esb.schemas.rules import evaluate_rules
from esb.schemas.validation import avro_errors, json_errors, parsed_avro_schema
from esb.schemas.wire import HEADER_SIZE, MAGIC_BYTE, read_avro

_NONE = object()
_ID_IN_URI = re.compile(r"(?:/schemas/ids/(\d+)|\b(sch_\d+))/?$", re.ASCII)
_MAX_CACHE = 100_000


class SchemaEnforcer:
    """``enforcer(tenant, ce_headers, data, content_type)``: raise ``ValidationFailed`` or pass."""

    def __init__(self, state: SchemaRegistryState) -> None:
        self.state = state
        self._by_type: dict[tuple[str, str], SchemaVersion | None] = {}
        self._by_ref: dict[tuple[str, str], SchemaVersion | None] = {}
        self._by_num: dict[tuple[str, int], SchemaVersion | None] = {}

    def invalidate(self) -> None:
        self._by_type.clear()
        self._by_ref.clear()
        self._by_num.clear()

    def __call__(self, tenant: str, headers: dict[str, str], data: bytes | None,
                 content_type: str) -> None:
        if data and data[0] == MAGIC_BYTE:
            self._check_wire(tenant, headers, data)
            return
        version = self._declared(tenant, headers) or self._for_type(tenant, headers.get("ce_type"))
        if version is None:
            return
        if version.schema_type is SchemaType.AVRO and not _is_json(content_type):
            payload = _read_avro(version, memoryview(data or b""))
        else:
            payload = _read_json(version, data)
        _raise_on_errors(version, _errors(version, payload))

    # ----------------------------------------------------------------- resolution

    def _for_type(self, tenant: str, event_type: str | None) -> SchemaVersion | None:
        if not event_type:
            return None
        key = (tenant, event_type)
        found = self._by_type.get(key, _NONE)
        if found is _NONE:
            try:
                latest = self.state.latest(tenant, subject_for_event_type(event_type))
                found = latest if latest.is_active else None
            except EsbError:
                found = None
            self._remember(self._by_type, key, found)
        return found  # type: ignore[return-value]

    def _declared(self, tenant: str, headers: dict[str, str]) -> SchemaVersion | None:
        ref = headers.get("ce_schemaid") or headers.get("ce_dataschema")
        if not ref:
            return None
        key = (tenant, ref)
        found = self._by_ref.get(key, _NONE)
        if found is _NONE:
            found = self._resolve_ref(tenant, ref)
            self._remember(self._by_ref, key, found)
        return found  # type: ignore[return-value]

    def _resolve_ref(self, tenant: str, ref: str) -> SchemaVersion | None:
        match = _ID_IN_URI.search(ref)
        try:
            if ref.isascii() and ref.isdigit():  # '²'.isdigit() is True, int('²') fails
                return self.state.get_by_id(tenant, int(ref))
            if ref.startswith("sch_"):
                return self.state.get_by_schema_id(tenant, ref)
            if match and match.group(1):
                return self.state.get_by_id(tenant, int(match.group(1)))
            if match and match.group(2):
                return self.state.get_by_schema_id(tenant, match.group(2))
        except EsbError:
            return None
        return None

    def _by_number(self, tenant: str, number: int) -> SchemaVersion | None:
        key = (tenant, number)
        found = self._by_num.get(key, _NONE)
        if found is _NONE:
            try:
                found = self.state.get_by_id(tenant, number)
            except EsbError:
                found = None
            self._remember(self._by_num, key, found)
        return found  # type: ignore[return-value]

    @staticmethod
    def _remember(cache: dict[Any, SchemaVersion | None], key: Any,
                  value: SchemaVersion | None) -> None:
        if len(cache) >= _MAX_CACHE:
            cache.clear()
        cache[key] = value

    # ----------------------------------------------------------------- wire format

    def _check_wire(self, tenant: str, headers: dict[str, str], data: bytes) -> None:
        if len(data) < HEADER_SIZE:
            raise ValidationFailed(
                "event data starts with the Confluent magic byte but is shorter than its header",
                errors=[{"path": "$", "message": f"{len(data)} bytes, need {HEADER_SIZE}"}])
        number = int.from_bytes(data[1:HEADER_SIZE], "big")
        version = self._by_number(tenant, number)
        if version is None:
            raise ValidationFailed(
                f"event data names schema id {number}, which tenant {tenant!r} has not registered",
                errors=[{"path": "$", "message": f"unknown schema id {number}"}], id=number)
        body = memoryview(data)[HEADER_SIZE:]
        if version.schema_type is SchemaType.AVRO:
            payload = _read_avro(version, body)
            # decoding with the writer schema already proves the body fits it: only rules remain
            errors = evaluate_rules(version.validation_rules.business_rules, payload)
        else:
            payload = _read_json(version, body)
            errors = _errors(version, payload)
        _raise_on_errors(version, errors)


def _is_json(content_type: str) -> bool:
    base = content_type.split(";", 1)[0].strip().lower()
    return base == "application/json" or base.endswith("+json") or base == "text/json"


def _read_json(version: SchemaVersion, data: bytes | memoryview | None) -> Any:
    try:
        return jsonsafe.loads(bytes(data or b""))
    except ValueError as exc:
        raise _failure(version, [FieldError(path="$", message=f"payload is not JSON: {exc}")]
                       ) from None


def _read_avro(version: SchemaVersion, body: memoryview) -> Any:
    stream = io.BytesIO(body)
    try:
        value = read_avro(stream, parsed_avro_schema(version.schema_text))
    except ValidationFailed as exc:  # bounds: a length or nesting the bytes cannot hold
        raise _failure(version, [FieldError(path=e["path"], message=e["message"])
                                 for e in exc.details.get("errors", ())]) from None
    except (EOFError, ValueError, IndexError, StopIteration, TypeError, UnicodeDecodeError,
            OverflowError, MemoryError, RecursionError) as exc:
        raise _failure(version, [FieldError(path="$", message=f"Avro body does not decode: {exc}")]
                       ) from None
    if stream.tell() != len(body):
        raise _failure(version, [FieldError(
            path="$", message=f"{len(body) - stream.tell()} trailing bytes after the Avro record")])
    return value


def _errors(version: SchemaVersion, payload: Any) -> list[FieldError]:
    if version.schema_type is SchemaType.AVRO:
        errors = avro_errors(version.schema_text, payload)
    else:
        errors = json_errors(version.schema_text, payload)
    rules = version.validation_rules.business_rules
    if not errors and rules:
        errors = evaluate_rules(rules, payload)
    return errors


def _raise_on_errors(version: SchemaVersion, errors: list[FieldError]) -> None:
    if errors:
        raise _failure(version, errors)


def _failure(version: SchemaVersion, errors: list[FieldError]) -> ValidationFailed:
    return ValidationFailed(
        f"event does not match schema {version.schema_id} (subject {version.subject!r} version "
        f"{version.version}, id {version.id})",
        errors=[e.model_dump(exclude_none=True) for e in errors],
        schema_id=version.schema_id, subject=version.subject, version=version.version,
        id=version.id,
    )
