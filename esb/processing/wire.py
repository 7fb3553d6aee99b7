"""Kafka records to the seed-shaped event dicts the operators read, and derived events back.

Records use the CloudEvents Kafka binding in binary mode (``ce_*`` headers, data as the value),
so an input is decoded once here and an output is encoded once, with its lineage attributes
(``correlationid``, ``causationid``) and the target stream in headers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from esb.envelope import EXTENSIONS, JSON, SPECVERSION, Envelope, attributes_from_kafka_headers
from esb.errors import InvalidRequest, ValidationFailed
from esb.processing.fields import from_epoch_ms, to_epoch_ms
from esb.topics import Priority

DEFAULT_SOURCE = "event_streaming_bus"


def event_from_record(headers: Sequence[tuple[str, bytes]], value: bytes | None
                      ) -> dict[str, Any]:
    """The seed-shaped event of a binary-mode record; ValidationFailed if it is not one."""
    attributes, content_type = attributes_from_kafka_headers(headers)
    missing = [name for name in ("id", "type") if name not in attributes]
    if missing:
        raise ValidationFailed(
            f"record is not a CloudEvent: missing {', '.join(missing)}",
            errors=[{"path": f"ce_{name}", "message": "required"} for name in missing],
        )
    return Envelope(attributes, value or b"", content_type).to_seed()


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def envelope_for(event: Mapping[str, Any], *, tenant: str, stream: str) -> Envelope:
    """The CloudEvent for a derived event on ``stream`` (the tenant always set by us)."""
    timestamp = event.get("timestamp")
    time_text = from_epoch_ms(to_epoch_ms(timestamp)) if timestamp is not None else None
    attributes: dict[str, str] = {
        "specversion": SPECVERSION,
        "id": str(event["event_id"]),
        "source": str(event.get("source_capability") or DEFAULT_SOURCE),
        "type": str(event["event_type"]),
    }
    if time_text is not None:
        attributes["time"] = time_text
    for seed_name, extension in EXTENSIONS.items():
        value = event.get(seed_name)
        if value is not None and value != "":
            attributes[extension] = _text(value)
    attributes["tenantid"] = tenant
    attributes["stream"] = stream
    if event.get("metadata"):
        attributes["metadata"] = json.dumps(event["metadata"], separators=(",", ":"))
    data = json.dumps(event.get("payload"), separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()
    return Envelope(attributes, data, JSON, event.get("payload"))


def output_priority(event: Mapping[str, Any]) -> Priority:
    """Outputs keep their input's priority lane; unknown or missing means NORMAL."""
    try:
        return Priority.parse(event.get("priority"))
    except InvalidRequest:
        return Priority.NORMAL


def replace_stream_header(headers: Sequence[tuple[str, bytes]], stream: str
                          ) -> list[tuple[str, bytes]]:
    """Headers of a forwarded record (FILTER) naming the target stream instead of the source."""
    out = [(key, value) for key, value in headers if key != "ce_stream"]
    out.append(("ce_stream", stream.encode()))
    return out
