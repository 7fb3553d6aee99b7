"""HTTP publishing: the seed's bodies, CloudEvents structured/binary, batch, idempotency, errors.

Every accepted event is then read back from the stream topic to check key and CloudEvents headers.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from cloudevents.v1.kafka import KafkaMessage, from_binary

from tests.support import consume_all, header, unique

pytestmark = pytest.mark.integration

SEED_EVENT = {  # seed 001, "Publish High-Priority Event"
    "event_type": "system.critical_alert",
    "source_capability": "monitoring",
    "aggregate_id": "alert_123",
    "aggregate_type": "SystemAlert",
    "payload": {"alert_type": "service_down", "service_name": "payment_service",
                "severity": "critical", "timestamp": "2025-01-26T10:30:00Z"},
    "priority": "CRITICAL",
    "compression_type": "NONE",
    "serialization_format": "JSON",
    "max_retries": 5,
}


async def _stream(api, source: str = "monitoring", **extra) -> str:
    name = unique("s")
    status, body = await api.post("/api/v1/streams", {"stream_name": name,
                                                      "source_capability": source, **extra})
    assert status == 201, body
    return name


async def test_seed_event_lands_on_the_critical_lane_with_cloudevents_headers(api_for, bootstrap
                                                                               ) -> None:
    tenant = unique()
    api = api_for(tenant)
    name = await _stream(api)
    status, body = await api.post("/api/v1/events", SEED_EVENT)
    assert status == 201, body
    assert body["event_id"].startswith("evt_") and body["stream_name"] == name
    assert body["topic"].endswith(f".{tenant}.{name}.critical")
    assert body["offset"] >= 0 and body["partition"] >= 0

    (record,) = await consume_all(bootstrap, [body["topic"]], expect=1)
    assert record.key == b"alert_123"
    assert record.partition == body["partition"] and record.offset == body["offset"]
    assert json.loads(record.value) == SEED_EVENT["payload"]
    assert header(record, "ce_id") == body["event_id"]
    assert header(record, "ce_type") == "system.critical_alert"
    assert header(record, "ce_tenantid") == tenant
    assert header(record, "ce_priority") == "CRITICAL"
    assert header(record, "ce_maxretries") == "5"
    # the official CloudEvents SDK reads our records (Kafka binding, binary mode)
    event = from_binary(KafkaMessage(headers=dict((k, v) for k, v in record.headers),
                                     key=record.key, value=record.value))
    assert event["id"] == body["event_id"] and event["aggregateid"] == "alert_123"
    assert event.data == SEED_EVENT["payload"]


async def test_cloudevents_structured_and_binary_http(api_for, bootstrap) -> None:
    tenant = unique()
    api = api_for(tenant)
    name = await _stream(api, source="https://example.com/orders")
    structured = {"specversion": "1.0", "id": "ce-1", "source": "https://example.com/orders",
                  "type": "order.created", "datacontenttype": "application/json",
                  "data": {"order_id": "o1"}, "aggregateid": "o1"}
    status, body = await api.request(
        "POST", "/api/v1/events", data=json.dumps(structured).encode(),
        headers={"Content-Type": "application/cloudevents+json"})
    assert status == 201, body
    assert body["event_id"] == "ce-1"
    status, body2 = await api.request(
        "POST", "/api/v1/events", data=b'{"order_id":"o2"}',
        headers={"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "ce-2",
                 "ce-source": "https://example.com/orders", "ce-type": "order.created",
                 "ce-aggregateid": "o2"})
    assert status == 201, body2
    records = await consume_all(bootstrap, [body["topic"]], expect=2)
    by_id = {header(r, "ce_id"): r for r in records}
    assert json.loads(by_id["ce-2"].value) == {"order_id": "o2"}
    assert by_id["ce-1"].key == b"o1" and header(by_id["ce-2"], "ce_stream") == name


async def test_batch_publish_answers_every_offset(api_for, bootstrap) -> None:
    api = api_for(unique())
    await _stream(api, source="user_management")
    events = [{"event_type": "user.created", "source_capability": "user_management",
               "aggregate_id": f"user_{i}", "payload": {"i": i}} for i in range(25)]
    status, body = await api.post("/api/v1/events/batch", {"events": events})
    assert status == 201, body
    assert body["published"] == 25 and len({e["event_id"] for e in body["events"]}) == 25
    records = await consume_all(bootstrap, [body["events"][0]["topic"]], expect=25)
    assert sorted(json.loads(r.value)["i"] for r in records) == list(range(25))


async def test_batch_is_all_or_nothing_on_validation(api_for) -> None:
    api = api_for(unique())
    await _stream(api, source="user_management")
    events = [{"event_type": "user.created", "source_capability": "user_management"},
              {"event_type": "", "source_capability": "user_management"}]
    status, problem = await api.post("/api/v1/events/batch", {"events": events})
    assert status == 422, problem
    assert problem["errors"][0]["path"] == "$.event_type"


async def test_idempotency_key_returns_the_same_event_and_publishes_once(api_for, bootstrap
                                                                         ) -> None:
    api = api_for(unique())
    await _stream(api, source="user_management")
    body = {"event_type": "user.created", "source_capability": "user_management",
            "aggregate_id": "u1", "payload": {"n": 1}}
    key = {"Idempotency-Key": unique("k")}
    answers = await asyncio.gather(*(api.post("/api/v1/events", body, headers=key)
                                     for _ in range(5)))
    assert {s for s, _ in answers} == {201}
    assert len({b["event_id"] for _, b in answers}) == 1
    records = await consume_all(bootstrap, [answers[0][1]["topic"]], expect=2, timeout=3)
    assert len(records) == 1
    status, problem = await api.post("/api/v1/events", {**body, "payload": {"n": 2}}, headers=key)
    assert status == 422 and "different request body" in problem["detail"]


async def test_rejections_are_clear(api_for, bus) -> None:
    api = api_for(unique())
    await _stream(api, source="user_management")
    ok = {"event_type": "user.created", "source_capability": "user_management"}

    status, problem = await api.post("/api/v1/events", {**ok, "tenant_id": "another"})
    assert status == 403, problem

    status, problem = await api.post("/api/v1/events", {**ok, "source_capability": "nobody"})
    assert status == 422 and problem["errors"][0]["message"] == "no route"

    status, problem = await api.post("/api/v1/events", {**ok, "stream_id": "str_missing"})
    assert status == 404

    status, problem = await api.post("/api/v1/events", {**ok, "priority": "URGENT"})
    assert status == 422 and problem["errors"][0]["path"] == "$.priority"

    group, _ = bus
    big = {**ok, "payload": {"blob": "x" * (group.settings.max_event_bytes + 10)}}
    status, problem = await api.post("/api/v1/events", big)
    assert status == 413 and problem["code"] == "payload_too_large"

    status, problem = await api.request("POST", "/api/v1/events", data=b"[1,2",
                                        headers={"Content-Type": "application/json"})
    assert status == 400


async def test_foreign_tenant_cannot_publish_to_or_read_a_stream(api_for) -> None:
    owner, intruder = api_for(unique()), api_for(unique())
    name = await _stream(owner, source="user_management")
    status, _ = await intruder.post("/api/v1/events", {
        "event_type": "user.created", "source_capability": "user_management", "stream_id": name})
    assert status == 404
    assert (await intruder.get(f"/api/v1/streams/{name}"))[0] == 404
