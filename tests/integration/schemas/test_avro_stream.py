"""A stream whose default_serialization is AVRO stores Avro in the Confluent wire format, whichever
path the JSON event came in by."""

from __future__ import annotations

import io
import json

import fastavro
import pytest

from esb.schemas.wire import decode
from tests.support import ce_headers, consume_all, produce, unique

pytestmark = pytest.mark.integration

AVRO = {"type": "record", "name": "OrderPlaced", "fields": [
    {"name": "order_id", "type": "string"}, {"name": "total", "type": "double"}]}


async def test_json_published_to_an_avro_stream_is_stored_as_wire_format_avro(api_for, bus,
                                                                              bootstrap) -> None:
    group, _ = bus
    tenant = unique()
    api = api_for(tenant)
    status, body = await api.post("/api/v1/schemas", {
        "schema_name": "order_placed", "schema_version": "1.0", "event_type": "order.placed",
        "avro_schema": AVRO})
    assert status in (200, 201), body
    status, created = await api.post("/api/v1/streams", {
        "stream_name": unique("s"), "source_capability": "shop", "default_serialization": "AVRO"})
    assert status == 201, created
    stream = created["stream"]

    status, answer = await api.post("/api/v1/events", {
        "event_type": "order.placed", "source_capability": "shop",
        "payload": {"order_id": "o1", "total": 9.5}})
    assert status == 201, answer
    await produce(bootstrap, f"{group.settings.topic_prefix}.{tenant}.ingress", [
        (None, json.dumps({"order_id": "o2", "total": 1.0}).encode(),
         ce_headers(tenant, "order.placed", source="shop"))])

    records = await consume_all(bootstrap, stream["topics"].values(), expect=2)
    assert len(records) == 2
    decoded = []
    for rec in records:
        assert dict(rec.headers)["content-type"] == b"application/avro"
        _schema_id, body_bytes = decode(rec.value)
        decoded.append(fastavro.schemaless_reader(io.BytesIO(bytes(body_bytes)),
                                                  fastavro.parse_schema(AVRO)))
    assert sorted(d["order_id"] for d in decoded) == ["o1", "o2"]

    status, problem = await api.post("/api/v1/events", {
        "event_type": "order.cancelled", "source_capability": "shop", "payload": {}})
    assert status == 422 and "no Avro schema" in problem["detail"]
