"""Kafka-native producers: CloudEvents on the ingress topic are validated, routed or dead-lettered.

Also covers the dead-letter API (list, read, redrive keeping the event id), live tail and metrics.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from esb import ids
from tests.support import ce_headers, consume_all, eventually, header, produce, unique

pytestmark = pytest.mark.integration


async def _stream(api, source: str = "user_management", **extra) -> dict:
    status, body = await api.post("/api/v1/streams", {"stream_name": unique("s"),
                                                      "source_capability": source, **extra})
    assert status == 201, body
    return body["stream"]


async def test_plain_kafka_producer_events_are_routed_with_keys_and_headers(api_for, bus,
                                                                             bootstrap) -> None:
    group, _ = bus
    tenant = unique()
    stream = await _stream(api_for(tenant))
    events = [(None, json.dumps({"n": i}).encode(),
               ce_headers(tenant, aggregateid=f"user_{i % 3}", priority=p))
              for i, p in enumerate(["NORMAL", "HIGH", "LOW", "CRITICAL", "NORMAL"])]
    await produce(bootstrap, f"{group.settings.topic_prefix}.{tenant}.ingress", events)
    records = await consume_all(bootstrap, stream["topics"].values(), expect=5)
    assert len(records) == 5
    for rec in records:
        n = json.loads(rec.value)["n"]
        assert rec.key == f"user_{n % 3}".encode()
        assert header(rec, "ce_stream") == stream["stream_name"]
        assert rec.topic == stream["topics"][header(rec, "ce_priority")]
    sent_ids = {header_value(h, "ce_id") for _, _, h in events}
    assert {header(r, "ce_id") for r in records} == sent_ids


def header_value(headers: list[tuple[str, bytes]], name: str) -> str:
    return next(v.decode() for k, v in headers if k == name)


async def test_structured_mode_record_is_converted_to_binary(api_for, bus, bootstrap) -> None:
    group, _ = bus
    tenant = unique()
    stream = await _stream(api_for(tenant))
    body = {"specversion": "1.0", "id": "s-1", "source": "user_management", "type": "user.created",
            "tenantid": tenant, "aggregateid": "u1", "datacontenttype": "application/json",
            "data": {"hello": "world"}}
    await produce(bootstrap, f"{group.settings.topic_prefix}.{tenant}.ingress",
                  [(b"u1", json.dumps(body).encode(),
                    [("content-type", b"application/cloudevents+json")])])
    (record,) = await consume_all(bootstrap, stream["topics"].values(), expect=1)
    assert json.loads(record.value) == {"hello": "world"}
    assert header(record, "ce_id") == "s-1" and header(record, "ce_tenantid") == tenant


async def test_bad_records_are_dead_lettered_then_redriven(api_for, bus, bootstrap) -> None:
    group, _ = bus
    tenant = unique()
    api = api_for(tenant)
    await _stream(api, source="users")  # the tenant's first stream creates its ingress topics
    ingress = f"{group.settings.topic_prefix}.{tenant}.ingress"
    orphan_id = ids.event_id()
    raw_garbage = b"\x00\xffnot an event"
    await produce(bootstrap, ingress, [
        (b"k1", raw_garbage, [("ce_tenantid", tenant.encode())]),            # missing attributes
        (b"k2", b"{}", ce_headers(tenant, "order.created", event_id=orphan_id,
                                  source="orders")),                         # no stream yet
        (b"k3", b"{}", ce_headers(tenant, priority="URGENT")),               # bad priority
    ])

    async def listed() -> list:
        status, body = await api.get("/api/v1/dead-letters")
        assert status == 200, body
        return body["dead_letters"] if len(body["dead_letters"]) == 3 else []

    letters = {d["reason"]: d for d in await eventually(listed)}
    assert set(letters) == {"missing_attribute", "no_route", "invalid_attribute"}
    assert all(d["stage"] == "ingress" and d["origin"]["topic"] == ingress
               for d in letters.values())

    status, one = await api.get(f"/api/v1/dead-letters/{letters['missing_attribute']['dlq_id']}")
    assert status == 200
    import base64
    assert base64.b64decode(one["record"]["value_base64"]) == raw_garbage  # bytes untouched
    assert one["record"]["key"] == "k1"

    # another tenant sees none of it
    other = api_for(unique())
    assert (await other.get("/api/v1/dead-letters"))[1]["count"] == 0
    assert (await other.get(f"/api/v1/dead-letters/{one['dlq_id']}"))[0] == 404

    # fix the cause (create the stream), redrive: routed with the same event id
    stream = await _stream(api, source="orders")
    status, result = await api.post(
        f"/api/v1/dead-letters/{letters['no_route']['dlq_id']}/redrive")
    assert status == 200, result
    assert result["event_id"] == orphan_id
    (record,) = await consume_all(bootstrap, stream["topics"].values(), expect=1)
    assert header(record, "ce_id") == orphan_id

    status, remaining = await api.get("/api/v1/dead-letters")
    assert {d["reason"] for d in remaining["dead_letters"]} == {"missing_attribute",
                                                                "invalid_attribute"}


async def test_bulk_redrive_by_filter(api_for, bus, bootstrap) -> None:
    group, _ = bus
    tenant = unique()
    api = api_for(tenant)
    await _stream(api, source="users")
    ingress = f"{group.settings.topic_prefix}.{tenant}.ingress"
    await produce(bootstrap, ingress, [(None, b"{}", ce_headers(tenant, "pay.done", source="pay"))
                                       for _ in range(4)])

    async def four() -> bool:
        return (await api.get("/api/v1/dead-letters?reason=no_route"))[1]["count"] == 4

    await eventually(four)
    stream = await _stream(api, source="pay")
    status, result = await api.post("/api/v1/dead-letters/redrive", {"reason": "no_route"})
    assert status == 200 and result["redriven"] == 4
    assert len(await consume_all(bootstrap, stream["topics"].values(), expect=4)) == 4


async def test_unattributed_dead_letters_are_for_operators_only(api_for, bus, bootstrap) -> None:
    group, _ = bus
    # a dead letter no stage could attribute (e.g. written before tenants were recorded)
    await produce(bootstrap, group.settings.topic_prefix + ".deadletter",
                  [(None, b"?", [("ce_id", b"\xff"), ("esb-dlq-reason", b"undecodable"),
                                 ("esb-dlq-stage", b"ingress")])])
    user = api_for(unique())
    assert (await user.get("/api/v1/dead-letters?unattributed=true"))[0] == 403
    operator = api_for(unique(), roles=["operator"])

    async def found() -> bool:
        status, body = await operator.get("/api/v1/dead-letters?unattributed=true&"
                                          "reason=undecodable")
        return status == 200 and body["count"] >= 1

    await eventually(found)


async def test_live_tail_streams_matching_events(api_for, bus, http) -> None:
    group, port = bus
    tenant = unique()
    api = api_for(tenant)
    stream = await _stream(api)
    url = (f"{group.url(port)}/ws/events/{stream['stream_name']}?event_type=user.*"
           f"&access_token={api.token}")
    async with http.ws_connect(url) as ws:
        hello = await ws.receive_json(timeout=10)
        assert hello["type"] == "subscribed"
        for event_type in ("order.placed", "user.created"):
            status, _ = await api.post("/api/v1/events", {
                "event_type": event_type, "source_capability": "user_management",
                "stream_id": stream["stream_name"], "payload": {"t": event_type}})
            assert status == 201
        message = await ws.receive_json(timeout=15)
        assert message["type"] == "event"
        assert message["event"]["type"] == "user.created"
        assert message["event"]["data"] == {"t": "user.created"}
        with pytest.raises(asyncio.TimeoutError):
            await ws.receive_json(timeout=1.5)  # order.placed was filtered out

    other = api_for(unique())
    async with http.get(f"{group.url(port)}/ws/events/{stream['stream_name']}",
                        headers=other.headers()) as resp:
        assert resp.status == 404


async def test_metrics_count_published_routed_and_dead_lettered(api_for, bus, http) -> None:
    group, port = bus
    tenant = unique()
    api = api_for(tenant)
    stream = await _stream(api)
    await api.post("/api/v1/events", {"event_type": "user.created",
                                      "source_capability": "user_management",
                                      "priority": "HIGH"})
    async with http.get(group.url(port) + "/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    line = (f'esb_events_published_total{{path="http",priority="HIGH",'
            f'stream="{stream["stream_name"]}",tenant="{tenant}"}} 1.0')
    assert line in text
    assert "esb_publish_latency_seconds_bucket" in text
    operator = {"Authorization": f"Bearer {group.token(unique(), roles=['operator'])}"}
    async with http.get(group.url(port) + "/health", headers=operator) as resp:
        health = await resp.json()
    assert health["status"] == "ok"
    assert set(health["checks"]) >= {"broker", "database", "partitions", "tables", "consumers"}
