"""Confluent Schema Registry REST shapes: request parsing, answers and error codes.

Pure mapping between Confluent's API (what ``confluent-kafka``'s ``SchemaRegistryClient`` sends
and expects) and :class:`SchemaRegistryState`; the views only move bytes. Error bodies are
Confluent's ``{"error_code": N, "message": ...}`` (40401 subject, 40402 version, 40403 schema
not found; 409 incompatible, with the reasons; 42201 invalid schema, 42202 invalid version), which
the official clients turn into ``SchemaRegistryError``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from esb.errors import (
    AuthenticationError,
    Conflict,
    EsbError,
    ExpressionError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from esb.schemas.models import CompatibilityLevel, CompatibilityResult, SchemaType, SchemaVersion
from esb.schemas.registry import SUBJECT_SUFFIX, SchemaRegistered, VersionRef

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
SUPPORTED_TYPES = ("AVRO", "JSON")


class ConfluentError(EsbError):
    """An error already in Confluent's terms (status + error_code)."""

    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.http_status = status
        self.error_code = error_code


def error_answer(exc: EsbError) -> tuple[int, dict[str, Any]]:
    """(HTTP status, Confluent error body) for any bus error."""
    status, code = _status_and_code(exc)
    message = exc.message
    messages = exc.details.get("messages")
    if messages:
        message = f"{message}: {'; '.join(messages)}"
    return status, {"error_code": code, "message": message}


def _status_and_code(exc: EsbError) -> tuple[int, int]:
    if isinstance(exc, ConfluentError):
        return exc.http_status, exc.error_code
    if isinstance(exc, NotFound):
        if "version" in exc.details:
            return 404, 40402
        if "id" in exc.details or exc.message.startswith("schema not found"):
            return 404, 40403
        return 404, 40401
    if isinstance(exc, Conflict):
        if "messages" in exc.details:  # incompatible schema
            return 409, 409
        return 404, 40407 if "versions" in exc.details else 40405  # not soft-deleted first
    if isinstance(exc, ValidationFailed | ExpressionError):
        return 422, 42201
    if isinstance(exc, InvalidRequest):
        return 422, 42202 if "version" in exc.details else 42201
    if isinstance(exc, AuthenticationError):
        return 401, 40101
    if isinstance(exc, PermissionDenied):
        return 403, 40301
    return exc.http_status, exc.http_status * 100 + 1 if exc.http_status < 600 else 50001


# --------------------------------------------------------------------------- requests


def flag(query: Any, name: str) -> bool:
    """Confluent clients send ``true``/``True``/``false``/``False``."""
    return str(query.get(name, "false")).lower() == "true"


def parse_version(raw: str) -> VersionRef:
    if raw in ("latest", "-1"):
        return "latest"
    try:
        number = int(raw)
    except ValueError:
        number = 0
    if number < 1 or number > 2**31 - 1:
        raise ConfluentError(422, 42202, f"The specified version '{raw}' is not a valid version "
                                         "id. Allowed values are between [1, 2^31-1] and the "
                                         "string \"latest\"")
    return number


def parse_level(body: Any) -> CompatibilityLevel:
    raw = body.get("compatibility") if isinstance(body, dict) else None
    try:
        return CompatibilityLevel(str(raw).upper())
    except ValueError:
        raise ConfluentError(422, 42203, f"Invalid compatibility level: {raw!r}") from None


def parse_schema_body(body: Any) -> tuple[SchemaType, str]:
    """(type, schema text) from ``{"schema": str, "schemaType"?, "references"?}``."""
    if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
        raise ConfluentError(422, 42201, "request must be an object with a string 'schema'")
    kind = str(body.get("schemaType") or "AVRO").upper()
    if kind not in SUPPORTED_TYPES:
        raise ConfluentError(422, 42201, f"schema type {kind} is not supported; use "
                                         f"{' or '.join(SUPPORTED_TYPES)}")
    if body.get("references"):
        raise ConfluentError(422, 42201, "schema references are not supported")
    return SchemaType(kind), body["schema"]


def registration_record(tenant: str, subject: str, body: Any, user: str | None
                        ) -> SchemaRegistered:
    schema_type, text = parse_schema_body(body)
    event_type = subject.removesuffix(SUBJECT_SUFFIX) if subject.endswith(SUBJECT_SUFFIX) else None
    return SchemaRegistered(tenant_id=tenant, subject=subject, schema_type=schema_type,
                            schema_text=text, event_type=event_type or None,
                            created_at=datetime.now(UTC), created_by=user)


# --------------------------------------------------------------------------- answers


def schema_body(version: SchemaVersion) -> dict[str, Any]:
    """``GET /schemas/ids/{id}``: Confluent leaves ``schemaType`` out for Avro."""
    body: dict[str, Any] = {"schema": version.schema_text}
    if version.schema_type is not SchemaType.AVRO:
        body["schemaType"] = str(version.schema_type)
    return body


def version_body(version: SchemaVersion) -> dict[str, Any]:
    """``GET /subjects/{s}/versions/{v}`` and lookup answers."""
    return {"subject": version.subject, "version": version.version, "id": version.id,
            **schema_body(version)}


def compatibility_body(result: CompatibilityResult, verbose: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"is_compatible": result.is_compatible}
    if verbose:
        body["messages"] = result.messages
    return body
