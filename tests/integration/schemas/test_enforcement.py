"""Enforcement on both publish paths, and Confluent Avro serde end to end through the ingress."""

from __future__ import annotations

import asyncio
import json

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from esb.schemas.wire import encode
from tests.support import ce_headers, consume_all, eventually, header, produce, unique

pytestmark = pytest.mark.integration

PROFILE = {
    "type": "object",
    "properties": {"user_id": {"type": "string"},
                   "profile_data": {"type": "object",
                                    "properties": {"email": {"type": "string",
                                                             "format": "email"}},
                                    "required": ["email"]}},
    "required": ["user_id", "profile_data"],
}
RULES = {"business_rules": [{"name": "company_email",
                             "rule": "profile_data.email.endsWith('@company.com')"}]}
ORDER = {"type": "record", "name": "Order", "namespace": "shop", "fields": [
    {"name": "order_id", "type": "string"}, {"name": "total", "type": "double"}]}


async def _setup(api, stream_types: list[str], **stream) -> str:
    name = unique("s")
    status, body = await api.post("/api/v1/streams", {"stream_name": name, "source_capability":
                                                      "shop", "event_types": stream_types,
                                                      **stream})
    assert status == 201, body
    return name


async def _register_profile(api) -> None:
    status, body = await api.post("/api/v1/schemas/enhanced", {
        "schema_name": "profile", "event_type": "user.profile_updated", "json_schema": PROFILE,
        "validation_rules": RULES})
    assert status == 201, body


def _event(payload):
    return {"event_type": "user.profile_updated", "source_capability": "shop",
            "payload": payload}


async def test_http_publish_rejects_invalid_events_with_paths(api_for) -> None:
    api = api_for(unique())
    await _setup(api, ["user.*"])
    await _register_profile(api)

    status, problem = await api.post("/api/v1/events", _event({"user_id": 7,
                                                               "profile_data": {}}))
    assert status == 422, problem
    assert {e["path"] for e in problem["errors"]} == {"$.user_id", "$.profile_data.email"}
    assert problem["subject"] == "user.profile_updated-value"

    status, problem = await api.post("/api/v1/events", _event(
        {"user_id": "u1", "profile_data": {"email": "u1@elsewhere.org"}}))
    assert status == 422 and problem["errors"][0]["rule"] == "company_email", problem

    status, body = await api.post("/api/v1/events", _event(
        {"user_id": "u1", "profile_data": {"email": "u1@company.com"}}))
    assert status == 201, body

    # a batch is all-or-nothing: one bad event rejects it, naming the path
    status, problem = await api.post("/api/v1/events/batch", {"events": [
        _event({"user_id": "u2", "profile_data": {"email": "u2@company.com"}}),
        _event({"user_id": "u3"})]})
    assert status == 422 and problem["errors"][0]["path"] == "$.profile_data", problem

    # other event types are not affected
    status, body = await api.post("/api/v1/events", {**_event({"anything": 1}),
                                                     "event_type": "user.deleted"})
    assert status == 201, body


async def test_ingress_dead_letters_schema_violations_with_paths(bus, api_for, bootstrap) -> None:
    group, _port = bus
    tenant = unique()
    api = api_for(tenant)
    stream = await _setup(api, ["user.*"])
    await _register_profile(api)
    good, bad = unique("e"), unique("e")
    await produce(bootstrap, f"{group.prefix}.{tenant}.ingress", [
        (b"k1", json.dumps({"user_id": "u", "profile_data": {"email": "u@company.com"}}).encode(),
         ce_headers(tenant, "user.profile_updated", event_id=good, source="shop")),
        (b"k2", json.dumps({"user_id": "u", "profile_data": {"email": 5}}).encode(),
         ce_headers(tenant, "user.profile_updated", event_id=bad, source="shop")),
    ])

    async def dead():
        _status, body = await api.get("/api/v1/dead-letters?reason=schema_violation")
        return [d for d in body.get("dead_letters", []) if d.get("event_id") == bad]

    (letter,) = await eventually(dead, timeout=60)
    assert letter["stage"] == "ingress" and letter["reason"] == "schema_violation"
    assert "$.profile_data.email" in letter["error"], letter

    records = await consume_all(bootstrap, [f"{group.prefix}.{tenant}.{stream}.normal"],
                                expect=1, timeout=30)
    # at-least-once: the router may deliver a duplicate, never the invalid event
    assert {header(r, "ce_id") for r in records} == {good}


def _avro_roundtrip(group, port, bootstrap: str, tenant: str, stream: str) -> list[dict]:
    registry = SchemaRegistryClient({
        "url": f"{group.url(port)}/schema-registry",
        "bearer.auth.credentials.source": "STATIC_TOKEN",
        "bearer.auth.token": group.token(tenant),
        "bearer.auth.logical.cluster": "lsrc-esb",
    })
    serializer = AvroSerializer(registry, json.dumps(ORDER), conf={
        "subject.name.strategy": lambda _ctx, _record_name: "order.placed-value"})
    ingress = f"{group.prefix}.{tenant}.ingress"
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False,
                         "linger.ms": 5})
    orders = [{"order_id": f"o{i}", "total": 10.0 + i} for i in range(3)]
    for i, order in enumerate(orders):
        value = serializer(order, SerializationContext(ingress, MessageField.VALUE))
        producer.produce(ingress, value=value, key=order["order_id"].encode(),
                         headers=[*ce_headers(tenant, "order.placed", source="shop",
                                              event_id=f"evt_avro_{tenant}_{i}")[:-1],
                                  ("content-type", b"application/avro")])
    assert producer.flush(30) == 0

    records = asyncio.run(consume_all(bootstrap, [f"{group.prefix}.{tenant}.{stream}.normal"],
                                      expect=3, timeout=60))
    deserializer = AvroDeserializer(registry)
    topic = f"{group.prefix}.{tenant}.{stream}.normal"
    for record in records:
        assert record.value[0] == 0  # stored as written: Confluent wire format
    return sorted((deserializer(r.value, SerializationContext(topic, MessageField.VALUE))
                   for r in records), key=lambda o: o["order_id"])


async def test_confluent_avro_producer_and_consumer_through_the_ingress(bus, api_for, bootstrap
                                                                       ) -> None:
    group, port = bus
    tenant = unique()
    api = api_for(tenant)
    stream = await _setup(api, ["order.*"], default_serialization="AVRO")
    got = await asyncio.to_thread(_avro_roundtrip, group, port, bootstrap, tenant, stream)
    assert got == [{"order_id": f"o{i}", "total": 10.0 + i} for i in range(3)]

    # the registry learned the subject from the serializer; wire-format events are checked too
    status, schemas = await api.get("/api/v1/schemas?event_type=order.placed")
    assert status == 200 and schemas["total"] == 1
    schema_num = schemas["schemas"][0]["id"]
    truncated, unknown = unique("e"), unique("e")
    await produce(bootstrap, f"{group.prefix}.{tenant}.ingress", [
        (b"k", encode(schema_num, b"\x04o1"), ce_headers(tenant, "order.placed", source="shop",
                                                          event_id=truncated)),
        (b"k", encode(999_999, b"\x04o1"), ce_headers(tenant, "order.placed", source="shop",
                                                       event_id=unknown)),
    ])

    async def dead():
        _status, body = await api.get("/api/v1/dead-letters?reason=schema_violation")
        return {d["event_id"]: d["error"] for d in body.get("dead_letters", [])
                if d.get("event_id") in (truncated, unknown)}

    errors = await eventually(lambda: _both(dead), timeout=60)
    assert "does not decode" in errors[truncated] and "$" in errors[truncated]
    assert "unknown schema id 999999" in errors[unknown]


async def _both(dead):
    found = await dead()
    return found if len(found) == 2 else None
