"""Seed 003's REST surface on a real worker: ``POST /events/publish?source=…`` lands on the
tenant's ANUMATE_EVENTS stream (created on first use) through the one publish path."""

from __future__ import annotations

import json

import pytest

from tests.support import consume_all, header, unique

pytestmark = pytest.mark.integration


async def test_seed_003_curl_publishes_to_the_default_stream(api_for, bootstrap) -> None:
    tenant = unique()
    api = api_for(tenant)
    assert (await api.get("/api/v1/streams/anumate_events"))[0] == 404  # no setup step
    status, body = await api.post("/events/publish?source=https://anumate.com/test", {
        "event_type": "com.anumate.test.event",
        "data": {"message": "Hello World"},
        "tenant_id": tenant,
    })
    assert status == 201, body
    assert body["status"] == "published" and body["stream_name"] == "anumate_events"
    status, stream = await api.get("/api/v1/streams/anumate_events")
    assert status == 200 and stream["source_capability"] == "anumate"

    (record,) = await consume_all(bootstrap, [body["topic"]], expect=1)
    assert header(record, "ce_id") == body["event_id"]
    assert header(record, "ce_source") == "https://anumate.com/test"
    assert header(record, "ce_type") == "com.anumate.test.event"
    assert header(record, "ce_tenantid") == tenant
    assert json.loads(record.value) == {"message": "Hello World"}

    again = await api.post("/events/publish", {"event_type": "com.anumate.x", "data": [1]})
    assert again[0] == 201 and again[1]["stream_name"] == "anumate_events"  # default source


async def test_a_retry_with_the_same_idempotency_key_publishes_once(api_for, bootstrap) -> None:
    api = api_for(unique())
    event = {"event_type": "com.anumate.order.placed", "data": {"n": 1}}
    key = {"Idempotency-Key": unique("idem")}
    first = await api.post("/events/publish?source=shop", event, headers=key)
    again = await api.post("/events/publish?source=shop", event, headers=key)
    assert first[0] == again[0] == 201, (first, again)
    assert again[1]["event_id"] == first[1]["event_id"]
    other = await api.post("/events/publish?source=shop", {**event, "data": {"n": 2}},
                           headers=key)
    assert (other[0], other[1]["code"]) == (422, "validation_failed")  # key reused, new body
    fresh = await api.post("/events/publish?source=shop", event)
    assert fresh[0] == 201 and fresh[1]["event_id"] != first[1]["event_id"]
    records = await consume_all(bootstrap, [first[1]["topic"]], expect=3, timeout=8)
    assert len(records) == 2 and sorted(header(r, "ce_id") for r in records) == sorted(
        {first[1]["event_id"], fresh[1]["event_id"]})


async def test_bad_anumate_requests_are_problems(api_for) -> None:
    tenant = unique()
    api = api_for(tenant)
    status, body = await api.post("/events/publish",
                                  {"event_type": "x.y", "data": {}, "tenant_id": "other"})
    assert (status, body["code"]) == (403, "forbidden")
    status, body = await api.post("/events/publish?source=s", {"event_type": "bad type!"})
    assert (status, body["code"]) == (422, "validation_failed")
    assert [e["path"] for e in body["errors"]] == ["$.event_type"]
    status, body = await api.post("/events/publish?source=" + "s" * 300, {"event_type": "a.b"})
    assert status == 422 and [e["path"] for e in body["errors"]] == ["$.source"]
    status, body = await api.post("/events/publish", {"event_type": "a.b", "payload": {}})
    assert status == 422 and body["errors"][0]["path"] == "$.payload"  # extra field
    status, body = await api.request("POST", "/events/publish", data=b"not json",
                                     headers={"Content-Type": "application/json"})
    assert (status, body["code"]) == (400, "invalid_request")
    api.token = None
    assert (await api.post("/events/publish", {"event_type": "a.b"}))[0] == 401


async def test_seed_003_health_shape(api_for) -> None:
    status, body = await api_for(unique()).get("/events/health")
    assert status == 200, body
    assert body["status"] == "healthy" and body["timestamp"].endswith("Z")
    assert body["details"] == {"broker_connected": True, "database_connected": True,
                               "running": True}
