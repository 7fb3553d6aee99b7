"""The ingress routing decision, from headers only: where does this record go, or why not.

Pure and allocation-light, because it runs for every event on the Kafka ingress path: the payload
is never decoded here (only CloudEvents structured-mode records, whose attributes live in the body,
are parsed, once, and turned into binary mode).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from esb.envelope import CE_JSON, envelopes_from_structured, is_json
from esb.errors import EsbError
from esb.streams import StreamDirectory
from esb.topics import Priority

Headers = Sequence[tuple[str, bytes]]
REQUIRED = ("ce_specversion", "ce_id", "ce_source", "ce_type")
HISTORY_HEADER = "esb-history"  # stage timings for processing history (esb.readside.stages)


class Rejected(Exception):
    """The record cannot be routed; ``reason`` is a stable code for the dead-letter record."""

    def __init__(self, reason: str, error: str, tenant: str | None = None) -> None:
        super().__init__(f"{reason}: {error}")
        self.reason = reason
        self.error = error
        self.tenant = tenant


@dataclass(slots=True)
class Route:
    topic: str
    key: bytes
    value: bytes | None
    headers: list[tuple[str, bytes]]
    codec: str | None
    tenant: str
    stream: str
    lane: str
    event_type: str
    has_history: bool = False


#: a payload check (e.g. schema validation): (tenant, ce_* headers, data, content type) -> None,
#: raising an EsbError to reject. Checks decide cheaply from headers whether they apply.
PayloadCheck = Callable[[str, dict[str, str], bytes | None, str], None]


#: re-encodes JSON data for a stream that stores another serialization:
#: (tenant, event type, JSON bytes) -> (new bytes, new content type)
PayloadEncoder = Callable[[str, str, bytes], tuple[bytes, str]]


class PayloadChecks:
    """The checks and encoders features register (schema registry, …); shared by both publish
    paths, so HTTP and the Kafka ingress accept, reject and store exactly the same events."""

    def __init__(self) -> None:
        self.checks: list[PayloadCheck] = []
        self.encoders: dict[str, PayloadEncoder] = {}

    def register(self, check: PayloadCheck) -> None:
        self.checks.append(check)

    def register_encoder(self, serialization: str, encoder: PayloadEncoder) -> None:
        """E.g. ``"AVRO"``: JSON published to a stream whose default_serialization is AVRO is
        stored as Avro in the Confluent wire format."""
        self.encoders[serialization] = encoder

    def encoder_for(self, stream: dict[str, Any], content_type: str) -> PayloadEncoder | None:
        if not self.encoders or not is_json(content_type):
            return None
        return self.encoders.get(stream.get("default_serialization", "JSON"))

    def __call__(self, tenant: str, headers: dict[str, str], data: bytes | None,
                 content_type: str) -> None:
        for check in self.checks:
            check(tenant, headers, data, content_type)


class IngressRouter:
    def __init__(self, directory: StreamDirectory, *, max_event_bytes: int,
                 payload_checks: PayloadChecks | None = None) -> None:
        self.directory = directory
        self.max_event_bytes = max_event_bytes
        self.payload_checks = payload_checks or PayloadChecks()

    def route(self, headers: Headers, key: bytes | None, value: bytes | None) -> Route:
        try:
            h = {k: v.decode() for k, v in headers if v is not None}
        except UnicodeDecodeError as exc:
            raise Rejected("undecodable", f"a header is not UTF-8: {exc}") from None
        out_headers = list(headers)
        if "ce_specversion" not in h and h.get("content-type", "").startswith(CE_JSON):
            h, value, out_headers = _structured_to_binary(value)
        if value is not None and len(value) > self.max_event_bytes:
            raise Rejected("too_large", f"payload of {len(value)} bytes exceeds "
                                        f"{self.max_event_bytes}", h.get("ce_tenantid"))
        missing = [name[3:] for name in REQUIRED if not h.get(name)]
        if missing:
            raise Rejected("missing_attribute",
                           f"missing CloudEvents attribute(s): {', '.join(missing)}",
                           h.get("ce_tenantid"))
        if h["ce_specversion"] != "1.0":
            raise Rejected("invalid_attribute", f"unsupported specversion {h['ce_specversion']!r}")
        tenant = h.get("ce_tenantid")
        if not tenant:
            raise Rejected("missing_attribute", "missing CloudEvents attribute: tenantid")
        try:
            priority = Priority.parse(h.get("ce_priority"))
        except EsbError as exc:
            raise Rejected("invalid_attribute", exc.message, tenant) from None
        event_type = h["ce_type"]
        hint = h.get("ce_stream")
        stream = self.directory.resolve(tenant, hint, event_type, h.get("ce_source"))
        if stream is None:
            what = f"stream {hint!r}" if hint else f"stream accepting type {event_type!r}"
            raise Rejected("no_route", f"tenant {tenant!r} has no {what}", tenant)
        if self.payload_checks.checks:
            try:
                self.payload_checks(tenant, h, value, h.get("content-type", "application/json"))
            except EsbError as exc:
                raise Rejected("schema_violation", _describe(exc), tenant) from None
        encoder = self.payload_checks.encoder_for(stream, h.get("content-type", "application/json"))
        if encoder is not None and value is not None:
            try:
                value, content_type = encoder(tenant, event_type, value)
            except EsbError as exc:
                raise Rejected("schema_violation", _describe(exc), tenant) from None
            out_headers = [(k, v) for k, v in out_headers if k != "content-type"]
            out_headers.append(("content-type", content_type.encode()))
        if not hint:
            out_headers.append(("ce_stream", stream["stream_name"].encode()))
        partition_key = h.get("ce_partitionkey") or h.get("ce_aggregateid")
        routed_key = partition_key.encode() if partition_key else (key or h["ce_id"].encode())
        return Route(
            topic=stream["topics"][priority.value],
            key=routed_key,
            value=value,
            headers=out_headers,
            codec=_codec(stream["compression_type"]),
            tenant=tenant,
            stream=stream["stream_name"],
            lane=priority.value,
            event_type=event_type,
            has_history=HISTORY_HEADER in h,
        )


def _codec(name: str) -> str | None:
    return None if name == "NONE" else name.lower()


def _describe(exc: EsbError) -> str:
    errors = exc.details.get("errors")
    return f"{exc.message}: {json.dumps(errors)}" if errors else exc.message


def _structured_to_binary(
    value: bytes | None,
) -> tuple[dict[str, str], bytes | None, list[tuple[str, bytes]]]:
    try:
        body: Any = json.loads(value or b"")
        (envelope,) = envelopes_from_structured(body)
    except (ValueError, EsbError) as exc:
        raise Rejected("undecodable", f"structured CloudEvent could not be parsed: {exc}") from None
    headers = envelope.kafka_headers()
    return ({k: v.decode() for k, v in headers}, envelope.data, headers)
