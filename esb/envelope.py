"""The event envelope: the seed's event fields mapped onto CloudEvents 1.0.

On Kafka we use the CloudEvents Kafka protocol binding in binary mode: attributes in ``ce_*`` headers,
``content-type`` for the data's media type, the payload bytes as the record value, the partition key as
the record key. Seed fields map to CloudEvents attributes (event_id→id, event_type→type,
source_capability→source, timestamp→time) and to lowercase extension attributes (aggregateid, tenantid …).

Routing reads only headers; the payload is decoded only by stages that must read it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from esb import ids
from esb.errors import InvalidRequest, ValidationFailed
from esb.observability.tracecontext import TRACE_ATTRIBUTES, check_trace_attribute
from esb.topics import Priority

SPECVERSION = "1.0"
JSON = "application/json"
CE_JSON = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"

#: seed field -> CloudEvents extension attribute (lowercase, no underscores)
EXTENSIONS: dict[str, str] = {
    "aggregate_id": "aggregateid",
    "aggregate_type": "aggregatetype",
    "sequence_number": "sequencenumber",
    "correlation_id": "correlationid",
    "causation_id": "causationid",
    "tenant_id": "tenantid",
    "user_id": "userid",
    "priority": "priority",
    "schema_version": "schemaversion",
    "schema_id": "schemaid",
    "event_version": "eventversion",
    "max_retries": "maxretries",
    "stream_id": "stream",
    "partition_key": "partitionkey",
}
CORE_ATTRIBUTES = ("specversion", "id", "source", "type", "time", "subject", "dataschema")
_ATTR_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


def now_rfc3339() -> str:
    return format_time(datetime.now(UTC))


def format_time(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"time {value!r} is not an RFC 3339 timestamp", field="time") from None
    if parsed.tzinfo is None:
        raise InvalidRequest(f"time {value!r} has no timezone offset", field="time")
    return parsed


class EventIn(BaseModel):
    """The seed's publish body (``POST /api/v1/events``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    event_id: str | None = Field(None, min_length=1, max_length=128)
    event_type: str = Field(..., min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][\w.\-:/]*$")
    event_version: str | None = Field(None, max_length=32)
    source_capability: str = Field(..., min_length=1, max_length=256)
    aggregate_id: str | None = Field(None, min_length=1, max_length=256)
    aggregate_type: str | None = Field(None, max_length=128)
    sequence_number: int | None = Field(None, ge=0)
    timestamp: datetime | None = None
    correlation_id: str | None = Field(None, max_length=256)
    causation_id: str | None = Field(None, max_length=256)
    tenant_id: str | None = None
    user_id: str | None = Field(None, max_length=256)
    metadata: dict[str, Any] = Field(default_factory=dict)
    payload: Any = Field(default_factory=dict)
    schema_version: str | None = Field(None, max_length=32)
    schema_id: str | None = Field(None, max_length=128)
    priority: Priority = Priority.NORMAL
    compression_type: str | None = None
    serialization_format: str | None = None
    max_retries: int | None = Field(None, ge=0, le=100)
    stream_id: str | None = Field(None, max_length=128)
    stream_name: str | None = Field(None, max_length=63)
    partition_key: str | None = Field(None, max_length=256)

    @field_validator("*", mode="after")
    @classmethod
    def _printable(cls, value: Any) -> Any:
        """Ids and names become Kafka headers and database keys: no control characters."""
        if isinstance(value, str) and not value.isprintable() and any(
                ch < " " or ch == "\x7f" for ch in value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("serialization_format")
    @classmethod
    def _serialization(cls, value: str | None) -> str | None:
        if value is not None and value.upper() not in ("JSON", "AVRO", "PROTOBUF"):
            raise ValueError("serialization_format must be JSON, AVRO or PROTOBUF")
        return value.upper() if value else value


@dataclass(slots=True)
class Envelope:
    """A CloudEvent as the bus carries it: string attributes plus the undecoded data bytes."""

    attributes: dict[str, str]
    data: bytes
    content_type: str = JSON
    _payload: Any = field(default=None, repr=False)

    # --- accessors -----------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.attributes["id"]

    @property
    def type(self) -> str:
        return self.attributes["type"]

    @property
    def tenant(self) -> str | None:
        return self.attributes.get("tenantid")

    @property
    def priority(self) -> Priority:
        return Priority.parse(self.attributes.get("priority"))

    @property
    def partition_key(self) -> str:
        a = self.attributes
        return a.get("partitionkey") or a.get("aggregateid") or a["id"]

    def payload(self) -> Any:
        """Decode the data (JSON only) once, on demand."""
        if self._payload is None:
            if not is_json(self.content_type):
                raise ValidationFailed(
                    f"payload is {self.content_type}, not JSON",
                    errors=[{"path": "$", "message": "not JSON"}],
                )
            try:
                self._payload = json.loads(self.data) if self.data else None
            except ValueError as exc:
                raise ValidationFailed(
                    "payload is not valid JSON", errors=[{"path": "$", "message": str(exc)}]
                ) from exc
        return self._payload

    # --- Kafka binary binding ------------------------------------------------------------
    def kafka_headers(self) -> list[tuple[str, bytes]]:
        headers = [(f"ce_{k}", v.encode()) for k, v in self.attributes.items()]
        headers.append(("content-type", self.content_type.encode()))
        return headers

    def kafka_key(self) -> bytes:
        return self.partition_key.encode()

    # --- renderings ----------------------------------------------------------------------
    def to_structured(self) -> dict[str, Any]:
        """CloudEvents JSON format (structured mode)."""
        body: dict[str, Any] = dict(self.attributes)
        body["datacontenttype"] = self.content_type
        if is_json(self.content_type):
            body["data"] = self.payload()
        else:
            import base64

            body["data_base64"] = base64.b64encode(self.data).decode()
        return body

    def to_seed(self) -> dict[str, Any]:
        """The seed's event shape (``event_id``, ``event_type`` …)."""
        a = self.attributes
        out: dict[str, Any] = {
            "event_id": a["id"],
            "event_type": a["type"],
            "source_capability": a.get("source"),
            "timestamp": a.get("time"),
        }
        for seed_name, ext in EXTENSIONS.items():
            if ext in a:
                value: Any = a[ext]
                if seed_name in ("sequence_number", "max_retries"):
                    value = int(value)
                out[seed_name] = value
        out["metadata"] = json.loads(a["metadata"]) if "metadata" in a else {}
        out["payload"] = self.payload() if is_json(self.content_type) else None
        return out


def is_json(content_type: str) -> bool:
    base = content_type.split(";", 1)[0].strip().lower()
    return base == JSON or base.endswith("+json")


def envelope_from_seed(body: EventIn, *, tenant: str, user: str) -> Envelope:
    """Build the CloudEvent for a seed-shaped publish request (runs per event: keep it lean)."""
    attrs: dict[str, str] = {
        "specversion": SPECVERSION,
        "id": body.event_id or ids.event_id(),
        "source": body.source_capability,
        "type": body.event_type,
        "time": format_time(body.timestamp) if body.timestamp else now_rfc3339(),
        "tenantid": tenant,
        "userid": body.user_id or user,
        "priority": body.priority.value,
    }
    for seed_name in _OPTIONAL_EXTENSIONS:
        value = getattr(body, seed_name)
        if value is not None and value != "":
            attrs[EXTENSIONS[seed_name]] = str(value)
    stream = body.stream_id or body.stream_name
    if stream:
        attrs["stream"] = stream
    if body.metadata:
        attrs["metadata"] = json.dumps(body.metadata, separators=(",", ":"))
    try:
        data = json.dumps(body.payload, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode()
    except ValueError:
        raise ValidationFailed("payload is not valid JSON (NaN or Infinity)",
                               errors=[{"path": "$.payload", "message": "NaN/Infinity"}]) from None
    return Envelope(attrs, data, JSON, body.payload)


_OPTIONAL_EXTENSIONS = tuple(
    name for name in EXTENSIONS if name not in ("tenant_id", "user_id", "priority", "stream_id"))


MAX_ATTRIBUTE_CHARS = 4096
MAX_ID_CHARS = 256


def check_attribute(name: str, value: Any) -> str:
    """A CloudEvents attribute value as the bus carries it: a string, bounded, no control
    characters (a NUL in an id crashed the PostgreSQL archive)."""
    if not isinstance(value, str):
        raise InvalidRequest(f"attribute {name!r} must be a string", field=name)
    limit = MAX_ID_CHARS if name in ID_ATTRIBUTES else MAX_ATTRIBUTE_CHARS
    if len(value) > limit:
        raise InvalidRequest(f"attribute {name!r} is longer than {limit} characters", field=name)
    if not value.isprintable() and any(ch < " " or ch == "\x7f" for ch in value):
        raise InvalidRequest(f"attribute {name!r} contains control characters", field=name)
    if name in TRACE_ATTRIBUTES:
        _check_trace(name, value)
    return value


def _check_trace(name: str, value: str) -> None:
    """The CloudEvents distributed-tracing extension carries W3C values, or nothing (ADR 0019)."""
    problem = check_trace_attribute(name, value)
    if problem is not None:
        raise InvalidRequest(problem, field=name)


ID_ATTRIBUTES = frozenset({"id", "type", "aggregateid", "partitionkey", "correlationid",
                            "causationid", "userid", "schemaid", "stream", "tenantid"})


def envelope_from_attributes(
    attributes: Mapping[str, Any], data: bytes, content_type: str | None
) -> Envelope:
    """Normalise CloudEvents attributes (from HTTP or Kafka) into an Envelope, checking the spec rules."""
    attrs: dict[str, str] = {}
    for name, value in attributes.items():
        if name in ("datacontenttype", "data", "data_base64"):
            continue
        if not name or len(name) > 64 or not set(name) <= _ATTR_NAME_OK:
            raise InvalidRequest(
                f"CloudEvents attribute name {name!r} must be lowercase letters and digits",
                field=name,
            )
        if value is None:
            continue
        if isinstance(value, datetime):
            value = format_time(value)
        if name in CORE_ATTRIBUTES and not isinstance(value, str):
            raise InvalidRequest(f"CloudEvents attribute {name!r} must be a string", field=name)
        if isinstance(value, (dict, list)):
            value = json.dumps(value, separators=(",", ":"), allow_nan=False)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = json.dumps(value, allow_nan=False)
        attrs[name] = check_attribute(name, value)
    missing = [a for a in ("specversion", "id", "source", "type") if not attrs.get(a)]
    if missing:
        raise InvalidRequest(
            f"CloudEvent is missing required attribute(s): {', '.join(missing)}", missing=missing
        )
    if attrs["specversion"] != SPECVERSION:
        raise InvalidRequest(f"unsupported CloudEvents specversion {attrs['specversion']!r}")
    if "time" in attrs:
        parse_time(attrs["time"])
    else:
        attrs["time"] = now_rfc3339()
    Priority.parse(attrs.get("priority"))
    return Envelope(attrs, data, content_type or JSON)


def envelopes_from_structured(body: Any) -> list[Envelope]:
    """CloudEvents JSON (one event) or JSON batch (a list) into envelopes."""
    items: Sequence[Any] = body if isinstance(body, list) else [body]
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidRequest("a structured CloudEvent must be a JSON object")
        content_type = item.get("datacontenttype") or JSON
        if not isinstance(content_type, str) or len(content_type) > 256:
            raise InvalidRequest("datacontenttype must be a media type string",
                                 field="datacontenttype")
        if "data_base64" in item:
            data = _base64(item["data_base64"])
        elif "data" in item:
            data = (json.dumps(item["data"], separators=(",", ":"), ensure_ascii=False,
                               allow_nan=False).encode()
                    if is_json(content_type) else _text_data(item["data"]))
        else:
            data = b""
        out.append(envelope_from_attributes(item, data, content_type))
    return out


def _base64(value: Any) -> bytes:
    import base64
    import binascii

    if not isinstance(value, str):
        raise InvalidRequest("data_base64 must be a base64 string", field="data_base64")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("data_base64 is not valid base64", field="data_base64") from None


def _text_data(value: Any) -> bytes:
    if not isinstance(value, str):
        raise InvalidRequest("data of a non-JSON datacontenttype must be a string", field="data")
    return value.encode()


def envelope_from_http_binary(headers: Mapping[str, str], body: bytes) -> Envelope:
    attrs = {k[3:].lower(): v for k, v in headers.items() if k.lower().startswith("ce-")}
    return envelope_from_attributes(attrs, body, headers.get("Content-Type") or JSON)


def attributes_from_kafka_headers(headers: Iterable[tuple[str, bytes | None]]
                                  ) -> tuple[dict[str, str], str]:
    """The one CloudEvents Kafka header codec (binary mode): ``ce_*`` attributes and the data's
    content type. A ``ce_*`` or ``content-type`` header without a value, not UTF-8, longer
    than :data:`MAX_ATTRIBUTE_CHARS` or holding control characters raises
    :class:`InvalidRequest`: such a record is not a CloudEvent, and callers dead-letter it
    rather than guess. Runs per event on the ingress: the common case stays in C calls."""
    attrs: dict[str, str] = {}
    content_type = JSON
    for key, value in headers:
        if key.startswith("ce_"):
            try:
                text = value.decode()  # type: ignore[union-attr]
            except (AttributeError, UnicodeDecodeError):
                text = _header_text(key, value)
            if not text.isprintable() or len(text) > MAX_ATTRIBUTE_CHARS:
                text = _header_text(key, value)
            attrs[key[3:]] = text
        elif key == "content-type":
            content_type = _header_text(key, value)
    if "traceparent" in attrs or "tracestate" in attrs:
        for name in TRACE_ATTRIBUTES & attrs.keys():
            _check_trace(name, attrs[name])
    return attrs, content_type


def _header_text(key: str, value: bytes | None) -> str:
    """The slow path: say exactly what is wrong with a header (or accept a tab)."""
    if value is None:
        raise InvalidRequest(f"header {key!r} has no value", field=key)
    try:
        text = value.decode()
    except UnicodeDecodeError:
        raise InvalidRequest(f"header {key!r} is not UTF-8 text", field=key) from None
    if len(text) > MAX_ATTRIBUTE_CHARS:
        raise InvalidRequest(f"header {key!r} is longer than {MAX_ATTRIBUTE_CHARS} characters",
                             field=key)
    if not text.isprintable() and any(ch < " " and ch != "\t" for ch in text):
        raise InvalidRequest(f"header {key!r} contains control characters", field=key)
    return text


def attributes_for_display(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    """``ce_*`` attributes of any record, never failing: for listing dead letters, whose
    headers are by definition whatever a producer sent."""
    return {k[3:]: (v or b"").decode(errors="replace").replace("\x00", "\ufffd")
            for k, v in headers if k.startswith("ce_")}
