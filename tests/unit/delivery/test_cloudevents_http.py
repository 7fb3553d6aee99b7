"""CloudEvents over HTTP, proven with the SDK's own parser (``cloudevents.core``)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat
from standardwebhooks.webhooks import Webhook

from esb.delivery.cloudevents_http import (
    BATCH_CONTENT_TYPE,
    OutboundEvent,
    build_delivery_request,
    encode_batch,
    encode_binary,
)
from esb.delivery.signing import SigningKeys, WebhookSecret

RAW = b'{ "user_name" : "john.doe",\n  "email": "j\\u00f6hn@example.com" }'  # odd spacing kept


def event(event_id: str = "evt_1", data: bytes = RAW,
          content_type: str | None = "application/json", **extra: str) -> OutboundEvent:
    attributes = {"specversion": "1.0", "id": event_id, "source": "user_management",
                  "type": "user.created", "time": "2025-01-26T10:30:00Z", "tenantid": "t1",
                  **extra}
    if content_type is not None:
        attributes["datacontenttype"] = content_type
    return OutboundEvent(attributes, data)


def test_binary_mode_headers_and_untouched_body() -> None:
    parts = encode_binary(event())
    assert parts.body is RAW or parts.body == RAW
    assert parts.headers["content-type"] == "application/json"
    assert parts.headers["ce-id"] == "evt_1"
    assert parts.headers["ce-tenantid"] == "t1"
    assert "ce-datacontenttype" not in parts.headers


def test_sdk_parses_binary_mode() -> None:
    parts = encode_binary(event(subject='caf\u00e9 "50%" off'))
    parsed = from_http(HTTPMessage(parts.headers, parts.body), JSONFormat())
    assert parsed.get_id() == "evt_1"
    assert parsed.get_type() == "user.created"
    assert parsed.get_time() == datetime(2025, 1, 26, 10, 30, tzinfo=UTC)
    assert parsed.get_subject() == 'caf\u00e9 "50%" off'  # percent-encoded, decoded back
    assert parsed.get_extension("tenantid") == "t1"
    assert parsed.get_data() == json.loads(RAW)
    assert all(ord(ch) < 128 for value in parts.headers.values() for ch in value)


def test_batch_mode_body_is_parsed_event_by_event_by_the_sdk() -> None:
    events = [
        event("e1"),
        event("e2", b"plain text", "text/plain"),
        event("e3", b"\x00\xffbinary", "application/octet-stream"),
        event("e4", b"{not json", "application/json"),  # corrupt: must not break the batch
        event("e5", b"", "application/json"),
    ]
    parts = encode_batch(events)
    assert parts.headers["content-type"] == BATCH_CONTENT_TYPE
    items = json.loads(parts.body)
    assert [i["id"] for i in items] == ["e1", "e2", "e3", "e4", "e5"]
    assert RAW in parts.body  # JSON data spliced in byte for byte, not re-encoded
    fmt = JSONFormat()
    parsed = [fmt.read(None, json.dumps(item).encode()) for item in items]
    assert parsed[0].get_data() == json.loads(RAW)
    assert parsed[1].get_data() == "plain text"
    assert parsed[2].get_data() == b"\x00\xffbinary"
    assert base64.b64decode(items[3]["data_base64"]) == b"{not json"
    assert "data" not in items[4] and "data_base64" not in items[4]
    assert parsed[0].get_extension("tenantid") == "t1"


def test_batch_needs_events() -> None:
    with pytest.raises(ValueError):
        encode_batch([])


def test_from_kafka_reads_the_binary_binding() -> None:
    headers = [("ce_specversion", b"1.0"), ("ce_id", b"k1"), ("ce_source", b"s"),
               ("ce_type", b"order.paid"), ("ce_tenantid", b"t9"),
               ("content-type", b"application/json"), ("traceparent", b"ignored")]
    outbound = OutboundEvent.from_kafka(headers, b'{"x":1}')
    assert outbound.id == "k1" and outbound.type == "order.paid"
    assert outbound.content_type == "application/json"
    assert outbound.attributes["tenantid"] == "t9"
    assert "traceparent" not in outbound.attributes
    with pytest.raises(ValueError, match="ce_type"):
        OutboundEvent.from_kafka([("ce_id", b"1"), ("ce_source", b"s"),
                                  ("ce_specversion", b"1.0")], b"")


def test_delivery_request_single_event_is_binary_and_signed() -> None:
    secret = WebhookSecret.generate()
    request = build_delivery_request([event("evt_42")], SigningKeys(secret))
    assert request.webhook_id == "evt_42"
    assert request.body == RAW
    assert request.headers["ce-id"] == "evt_42"
    Webhook(secret.encoded).verify(request.body, request.headers)


def test_delivery_request_batch_is_signed_over_the_exact_body() -> None:
    secret = WebhookSecret.generate()
    keys = SigningKeys(secret)
    events = [event("a"), event("b")]
    request = build_delivery_request(events, keys)
    assert request.headers["content-type"] == BATCH_CONTENT_TYPE
    assert request.event_ids == ("a", "b")
    assert [e["id"] for e in Webhook(secret.encoded).verify(request.body, request.headers)] == [
        "a", "b"]
    again = build_delivery_request(events, keys)
    assert again.webhook_id == request.webhook_id  # a retry carries the same webhook-id


def test_forced_batch_for_one_event_and_binary_refuses_several() -> None:
    keys = SigningKeys(WebhookSecret.generate())
    forced = build_delivery_request([event("solo")], keys, batched=True)
    assert json.loads(forced.body)[0]["id"] == "solo"
    with pytest.raises(ValueError):
        build_delivery_request([event("a"), event("b")], keys, batched=False)
    with pytest.raises(ValueError):
        build_delivery_request([], keys)
