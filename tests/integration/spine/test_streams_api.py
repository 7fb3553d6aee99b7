"""Streams API against a real worker and broker: create, list, read, conflicts, validation, auth."""

from __future__ import annotations

import asyncio

import pytest

from tests.support import unique

pytestmark = pytest.mark.integration


async def test_create_list_get_stream(api_for) -> None:
    tenant, name = unique(), unique("s")
    api = api_for(tenant)
    status, body = await api.post("/api/v1/streams", {
        "stream_name": name, "topic_name": "apg-user-events", "source_capability": "user_management",
        "partitions": 3, "replication_factor": 1, "compression_type": "SNAPPY",
        "default_serialization": "JSON", "retention_time_ms": 604800000,
        "cleanup_policy": "delete"})
    assert status == 201, body
    assert body["stream_id"] == f"str_{name}"
    assert body["message"] == "Stream created successfully"
    stream = body["stream"]
    assert stream["topics"]["CRITICAL"].endswith(f".{tenant}.{name}.critical")
    assert stream["retention_policy"] == {"time_ms": 604800000, "size_bytes": None}

    status, listing = await api.get("/api/v1/streams")
    assert status == 200
    assert [s["stream_name"] for s in listing["streams"]] == [name]

    for ref in (name, f"str_{name}"):
        status, got = await api.get(f"/api/v1/streams/{ref}")
        assert status == 200 and got["compression_type"] == "SNAPPY"


async def test_duplicate_name_is_409_even_when_concurrent(api_for) -> None:
    api = api_for(unique())
    name = unique("s")
    results = await asyncio.gather(*(api.post("/api/v1/streams", {"stream_name": name})
                                     for _ in range(4)))
    statuses = sorted(s for s, _ in results)
    assert statuses == [201, 409, 409, 409], results
    conflict = next(b for s, b in results if s == 409)
    assert conflict["code"] == "already_exists"


async def test_same_stream_name_in_two_tenants_is_isolated(api_for) -> None:
    name = unique("s")
    a, b = api_for(unique()), api_for(unique())
    assert (await a.post("/api/v1/streams", {"stream_name": name}))[0] == 201
    assert (await b.get(f"/api/v1/streams/{name}"))[0] == 404
    assert (await b.post("/api/v1/streams", {"stream_name": name}))[0] == 201
    assert (await b.get("/api/v1/streams"))[1]["total"] == 1


@pytest.mark.parametrize(("body", "path"), [
    ({"stream_name": "Bad.Name"}, "$.stream_name"),
    ({"stream_name": "ok", "partitions": 0}, "$.partitions"),
    ({"stream_name": "ok", "compression_type": "BROTLI"}, "$.compression_type"),
    ({"stream_name": "ok", "unknown_field": 1}, "$.unknown_field"),
])
async def test_invalid_stream_bodies_are_422_with_paths(api_for, body, path) -> None:
    status, problem = await api_for(unique()).post("/api/v1/streams", body)
    assert status == 422, problem
    assert problem["code"] == "validation_failed"
    assert path in [e["path"] for e in problem["errors"]]


async def test_replication_factor_is_checked_against_the_brokers(api_for) -> None:
    status, problem = await api_for(unique()).post(
        "/api/v1/streams", {"stream_name": unique("s"), "replication_factor": 3})
    assert status == 422
    assert "exceeds the 1 broker" in problem["detail"]


async def test_malformed_json_is_400(api_for) -> None:
    status, problem = await api_for(unique()).request(
        "POST", "/api/v1/streams", data=b"{not json", headers={"Content-Type": "application/json"})
    assert status == 400 and problem["code"] == "invalid_request"


async def test_authentication_is_required(bus, http) -> None:
    group, port = bus
    async with http.get(group.url(port) + "/api/v1/streams") as resp:
        assert resp.status == 401
        assert resp.content_type == "application/problem+json"
    async with http.get(group.url(port) + "/api/v1/streams",
                        headers={"Authorization": "Bearer not-a-jwt"}) as resp:
        assert resp.status == 401
    async with http.get(group.url(port) + "/health") as resp:
        assert resp.status == 200


async def test_body_tenant_must_match_token(api_for) -> None:
    status, problem = await api_for(unique()).post(
        "/api/v1/streams", {"stream_name": unique("s"), "tenant_id": "someone_else"})
    assert status == 403 and problem["code"] == "forbidden"


async def test_unknown_route_is_problem_json(api_for) -> None:
    status, problem = await api_for(unique()).get("/api/v1/nope")
    assert status == 404 and problem["code"] == "not_found"
