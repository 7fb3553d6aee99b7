"""The PostgreSQL read side through the API: archive queries per tenant, stream events,
processing history, and read models (define, query, rebuild, replay)."""

from __future__ import annotations

import pytest

from tests.support import eventually, unique

pytestmark = pytest.mark.integration

APPEND = "/api/v1/event-sourcing/append"


async def _publish(api, stream: str, n: int, event_type: str = "order.created") -> list[str]:  # type: ignore[no-untyped-def]
    status, body = await api.post("/api/v1/events/batch", {"events": [
        {"event_type": event_type, "source_capability": "shop", "stream_id": stream,
         "aggregate_id": f"ord_{i}", "correlation_id": f"c{i % 2}",
         "payload": {"total": i, "tags": {"vip": i % 2 == 0}}} for i in range(n)]})
    assert status in (200, 201, 202), body
    return [r["event_id"] for r in body["events"]]


async def _archived(api, ids: list[str]) -> bool:  # type: ignore[no-untyped-def]
    for event_id in ids:
        if (await api.get(f"/api/v1/events/{event_id}"))[0] != 200:
            return False
    return True


async def test_archive_queries_return_exactly_the_tenants_events(api_for) -> None:
    tenant_a, tenant_b = unique(), unique()
    a, b = api_for(tenant_a), api_for(tenant_b)
    stream = unique("s")
    for api in (a, b):
        assert (await api.post("/api/v1/streams", {"stream_name": stream}))[0] == 201
    ids_a = await _publish(a, stream, 6)
    ids_b = await _publish(b, stream, 4)
    await eventually(lambda: _archived(a, ids_a), timeout=60)
    await eventually(lambda: _archived(b, ids_b), timeout=60)

    status, page = await a.post("/api/v1/events/query", {"event_types": ["order.*"]})
    assert status == 200
    assert sorted(e["event_id"] for e in page["events"]) == sorted(ids_a)
    assert {e["tenant_id"] for e in page["events"]} == {tenant_a}
    assert (await a.get(f"/api/v1/events/{ids_b[0]}"))[0] == 404

    status, page = await a.post("/api/v1/events/query", {
        "event_types": ["order.*"], "correlation_id": "c0",
        "payload_contains": {"tags": {"vip": True}}, "limit": 2})
    assert status == 200 and page["count"] == 2 and page["next_cursor"]
    status, rest = await a.post("/api/v1/events/query", {
        "event_types": ["order.*"], "correlation_id": "c0",
        "payload_contains": {"tags": {"vip": True}}, "limit": 2, "cursor": page["next_cursor"]})
    got = [e["payload"]["total"] for e in page["events"] + rest["events"]]
    assert sorted(got) == [0, 2, 4]
    assert (await a.post("/api/v1/events/query", {"event_types": ["user.*"]}))[1]["count"] == 0
    status, _problem = await a.post("/api/v1/events/query", {"event_types": ["x"], "sql": "1"})
    assert status == 422

    status, listed = await b.get(f"/api/v1/streams/{stream}/events?limit=100")
    assert status == 200 and sorted(e["event_id"] for e in listed["events"]) == sorted(ids_b)
    assert (await b.get(f"/api/v1/streams/{unique('s')}/events"))[0] == 404


async def test_processing_history_in_the_seed_shape(api_for) -> None:
    api = api_for(unique())
    status, appended = await api.post(APPEND, {
        "aggregate_id": unique("user_"), "aggregate_type": "User", "event_type": "user.created",
        "event_data": {"email": "a@x"}})
    assert status == 201
    event_id = appended["event_id"]

    async def history() -> dict | None:  # type: ignore[type-arg]
        _status, body = await api.get(f"/api/v1/events/{event_id}/processing-history")
        stages = {h["processing_stage"] for h in body.get("processing_history", [])}
        return body if {"SOURCING", "INGESTION", "PROJECTION"} <= stages else None

    body = await eventually(history, timeout=60)
    assert body["event_id"] == event_id
    assert body["overall_status"] == "COMPLETED" and body["stages_completed"] == 3
    for entry in body["processing_history"]:
        assert entry["history_id"].startswith("hist_")
        assert entry["status"] == "COMPLETED" and entry["retry_count"] == 0
        assert entry["processing_duration_ms"] >= 0
        assert {"processor_id", "started_at", "completed_at"} <= set(entry)
    assert body["total_processing_time_ms"] == pytest.approx(
        sum(e["processing_duration_ms"] for e in body["processing_history"]))
    other = api_for(unique())
    status, empty = await other.get(f"/api/v1/events/{event_id}/processing-history")
    assert status == 200 and empty["processing_history"] == []
    assert empty["overall_status"] == "PENDING"


async def test_read_model_define_query_rebuild_replay(api_for) -> None:
    api = api_for(unique())
    users = [unique("user_") for _ in range(3)]
    for i, user in enumerate(users):
        assert (await api.post(APPEND, {
            "aggregate_id": user, "aggregate_type": "Member", "event_type": "member.joined",
            "event_data": {"email": f"{i}@x", "plan": "free"}}))[0] == 201
    assert (await api.post(APPEND, {
        "aggregate_id": users[0], "aggregate_type": "Member", "event_type": "member.upgraded",
        "event_data": {"plan": "pro"}}))[0] == 201
    status, left = await api.post(APPEND, {
        "aggregate_id": users[2], "aggregate_type": "Member", "event_type": "member.left",
        "event_data": {}})
    assert status == 201

    async def archived() -> bool:
        return (await api.get(f"/api/v1/events/{left['event_id']}"))[0] == 200

    await eventually(archived, timeout=60)
    definition = {"name": "members", "event_types": ["member.*"], "key_field": "aggregate_id",
                  "operations": {"member.left": "delete"},
                  "fields": {"email": "payload.email", "plan": "payload.plan",
                             "version": "sequence_number"}}
    status, created = await api.post("/api/v1/read-models", definition)
    assert status == 201, created
    status, docs = await api.get("/api/v1/read-models/members/documents")
    assert status == 200
    by_key = {d["key"]: d["document"] for d in docs["documents"]}
    assert by_key == {users[0]: {"email": "0@x", "plan": "pro", "version": 2},
                      users[1]: {"email": "1@x", "plan": "free", "version": 1}}

    # live: the projection agent keeps the model current
    assert (await api.post(APPEND, {
        "aggregate_id": users[1], "aggregate_type": "Member", "event_type": "member.upgraded",
        "event_data": {"plan": "team"}}))[0] == 201

    async def updated() -> bool:
        status, doc = await api.get(f"/api/v1/read-models/members/documents/{users[1]}")
        return status == 200 and doc["document"]["plan"] == "team"

    await eventually(updated, timeout=60)
    status, rebuilt = await api.post("/api/v1/read-models/members/rebuild")
    assert status == 200 and rebuilt["changes_applied"] == 6
    status, doc = await api.get(f"/api/v1/read-models/members/documents/{users[1]}")
    assert doc["document"] == {"email": "1@x", "plan": "team", "version": 2}
    status, replayed = await api.post("/api/v1/read-models/members/replay",
                                      {"aggregate_id": users[0]})
    assert status == 200 and replayed["changes_applied"] == 2
    assert (await api.get(f"/api/v1/read-models/members/documents/{users[2]}"))[0] == 404
    other = api_for(unique())
    assert (await other.get("/api/v1/read-models/members/documents"))[0] == 404
    status, listed = await api.get("/api/v1/read-models")
    assert [m["name"] for m in listed["read_models"]] == ["members"]
