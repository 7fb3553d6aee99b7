"""CloudEvents over HTTP for webhook deliveries, without re-encoding the event data.

One event goes in *binary* content mode: attributes as ``ce-*`` headers (percent-encoded per
the HTTP binding, section 3.1.3.2), ``datacontenttype`` as ``Content-Type``, and the body is
the event's data bytes exactly as they sit in Kafka. Several events (``batch_size > 1``) go in
*batched* mode, ``application/cloudevents-batch+json``: a JSON array of structured events.

The ``cloudevents`` SDK's ``to_binary`` takes a decoded event and serialises its data again,
which is the decode/re-encode the bus avoids; so headers are built here and the SDK's
``from_http`` is what the tests use to prove a receiver reads them.

In a batch, JSON data is spliced into the array as the original bytes after a validity check
(so one malformed record can never corrupt the whole batch body: it goes as ``data_base64``);
``text/*`` data travels as a JSON string, anything else as ``data_base64``.

:func:`build_delivery_request` adds the Standard Webhooks headers, signed over the exact body.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from esb.delivery.signing import SigningKeys, batch_webhook_id, webhook_headers

__all__ = [
    "BATCH_CONTENT_TYPE",
    "DeliveryRequest",
    "HttpParts",
    "OutboundEvent",
    "build_delivery_request",
    "encode_batch",
    "encode_binary",
]

BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
_CE_HEADER_PREFIX = "ce-"
_KAFKA_HEADER_PREFIX = "ce_"
_JSON_TYPE = re.compile(r"^(application|text)/([\w.\-]+\+)?json\s*(;.*)?$", re.IGNORECASE)
# HTTP binding 3.1.3.2: printable ASCII except space, '"' and '%' goes as is; the rest is %-encoded.
_HEADER_SAFE = "".join(c for c in map(chr, range(0x21, 0x7F)) if c not in ' "%')


@dataclass(frozen=True, slots=True)
class OutboundEvent:
    """An event as the delivery path holds it: attribute strings plus untouched data bytes."""

    attributes: Mapping[str, str]
    data: bytes = b""

    @classmethod
    def from_kafka(cls, headers: Iterable[tuple[str, bytes]], value: bytes | None
                   ) -> OutboundEvent:
        """Read the CloudEvents Kafka binary binding (``ce_*`` headers, ``content-type``)."""
        attributes: dict[str, str] = {}
        for key, raw in headers:
            name = key.lower()
            if name.startswith(_KAFKA_HEADER_PREFIX):
                attributes[name[len(_KAFKA_HEADER_PREFIX):]] = raw.decode("utf-8")
            elif name == "content-type":
                attributes["datacontenttype"] = raw.decode("utf-8")
        for required in ("id", "source", "type", "specversion"):
            if required not in attributes:
                raise ValueError(f"Kafka record is not a CloudEvent: missing ce_{required}")
        return cls(attributes, value or b"")

    @property
    def id(self) -> str:
        return self.attributes["id"]

    @property
    def type(self) -> str:
        return self.attributes["type"]

    @property
    def content_type(self) -> str | None:
        return self.attributes.get("datacontenttype")


@dataclass(frozen=True, slots=True)
class HttpParts:
    headers: dict[str, str]
    body: bytes


def encode_binary(event: OutboundEvent) -> HttpParts:
    """Binary content mode: ``ce-*`` headers, ``content-type``, body = the data bytes."""
    headers: dict[str, str] = {}
    for name, value in event.attributes.items():
        if name == "datacontenttype":
            headers["content-type"] = value
        else:
            headers[_CE_HEADER_PREFIX + name] = quote(value, safe=_HEADER_SAFE)
    return HttpParts(headers, event.data)


def _structured_json(event: OutboundEvent) -> bytes:
    attributes = dict(event.attributes)
    content_type = attributes.get("datacontenttype")
    head = json.dumps(attributes, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if not event.data:
        return head
    is_json = content_type is None or _JSON_TYPE.match(content_type) is not None
    if is_json and _is_json(event.data):
        member = b'"data":' + event.data
    elif content_type is not None and content_type.lower().startswith("text/") and _is_utf8(
            event.data):
        member = b'"data":' + json.dumps(event.data.decode("utf-8"), ensure_ascii=False
                                          ).encode("utf-8")
    else:
        member = b'"data_base64":"' + base64.b64encode(event.data) + b'"'
    separator = b"," if len(head) > 2 else b""  # head is b"{}" only without attributes
    return head[:-1] + separator + member + b"}"


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:  # includes UnicodeDecodeError
        return False
    return True


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def encode_batch(events: Sequence[OutboundEvent]) -> HttpParts:
    """Batched content mode: one JSON array of structured-mode events."""
    if not events:
        raise ValueError("a batch needs at least one event")
    body = b"[" + b",".join(_structured_json(e) for e in events) + b"]"
    return HttpParts({"content-type": BATCH_CONTENT_TYPE}, body)


@dataclass(frozen=True, slots=True)
class DeliveryRequest:
    """What the HTTP adapter POSTs; ``webhook_id`` is stable across retries of the same events."""

    webhook_id: str
    event_ids: tuple[str, ...]
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)


def build_delivery_request(events: Sequence[OutboundEvent], keys: SigningKeys, *,
                           batched: bool | None = None, now: float | None = None
                           ) -> DeliveryRequest:
    """Encode ``events`` (binary for one, batched for several) and sign the exact body.

    ``batched`` forces the batch format even for one event (a subscription with
    ``batch_size > 1`` should always send batches so the receiver sees one shape).
    """
    if not events:
        raise ValueError("nothing to deliver")
    use_batch = len(events) > 1 if batched is None else batched
    if not use_batch and len(events) > 1:
        raise ValueError("binary mode carries exactly one event")
    parts = encode_batch(events) if use_batch else encode_binary(events[0])
    event_ids = tuple(e.id for e in events)
    webhook_id = batch_webhook_id(event_ids)
    headers = {**parts.headers, **webhook_headers(webhook_id, parts.body, keys, now)}
    return DeliveryRequest(webhook_id, event_ids, headers, parts.body)
