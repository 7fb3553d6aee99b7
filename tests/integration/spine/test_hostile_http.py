"""Hostile HTTP input against a real worker (ADR 0012): no input yields a 5xx, and the isolation
holes Faust's own web endpoints opened are closed.

Most tests use the shared worker (default limits); the limits that need small values to test
(batch bytes, WebSockets per tenant, JSON depth) get one worker of their own for this module.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import aiohttp
import jwt
import pytest

from tests.support import Api, WorkerGroup, unique

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
APPEND = "/api/v1/event-sourcing/append"
EVENT = {"event_type": "user.created", "source_capability": "user_management",
         "aggregate_id": "user_1", "payload": {"n": 1}}


@pytest.fixture(scope="module")
def limited(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[WorkerGroup, int]]:
    """A worker with small limits: 64 KiB batches, 2 WebSockets per tenant, JSON depth 16."""
    group = WorkerGroup(broker_url, database_url, tmp_path_factory.mktemp("hostile"),
                        extra_env={"ESB_MAX_BATCH_BYTES": "65536", "ESB_MAX_WS_PER_TENANT": "2",
                                   "ESB_MAX_JSON_DEPTH": "16"})
    port = group.start()
    try:
        yield group, port
    finally:
        group.stop_all()


def _api(group_port: tuple[WorkerGroup, int], http: aiohttp.ClientSession, tenant: str,
         roles: list[str] | None = None) -> Api:
    group, port = group_port
    return Api(http, group.url(port), group.token(tenant, roles=roles))


async def _stream(api: Api) -> str:
    name = unique("s")
    status, body = await api.post("/api/v1/streams", {"stream_name": name,
                                                      "source_capability": "user_management"})
    assert status == 201, body
    return name


async def _raw(api: Api, method: str, path: str, data: bytes,
               content_type: str = "application/json") -> tuple[int, Any, str]:
    async with api.session.request(method, api.base + path, data=data, headers=api.headers(
            {"Content-Type": content_type})) as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text), resp.content_type
        except ValueError:
            return resp.status, text, resp.content_type


# --- 1. deep JSON --------------------------------------------------------------------------


async def test_a_200k_deep_json_body_is_a_400_problem_on_every_json_endpoint(api_for) -> None:
    api = api_for(unique())
    for path, ctype, depth in [("/api/v1/events", "application/json", 200_000),
                               ("/api/v1/events", "application/cloudevents+json", 200_000),
                               ("/api/v1/events/batch", "application/json", 200_000),
                               (APPEND, "application/json", 200_000),
                               ("/api/v1/schemas", "application/json", 200_000),
                               ("/api/v1/streams", "application/json", 30_000)]:  # 64 KiB body
        deep = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
        status, body, got = await _raw(api, "POST", path, deep, ctype)
        assert (status, got) == (400, PROBLEM), (path, status, body)
        assert body["code"] == "invalid_request" and "deeper than 64" in body["detail"]


async def test_json_depth_is_a_setting(limited, http) -> None:
    api = _api(limited, http, unique())
    nested: Any = {"stream_name": unique("s")}
    for _ in range(15):
        nested = {"x": nested}  # 16 levels: parsed (then refused by the model: 422)
    status, body, _ = await _raw(api, "POST", "/api/v1/streams", json.dumps(nested).encode())
    assert status == 422, body
    status, body, _ = await _raw(api, "POST", "/api/v1/streams",
                                 json.dumps({"x": nested}).encode())
    assert status == 400 and "deeper than 16" in body["detail"]


# --- 2. NaN / Infinity ----------------------------------------------------------------------


async def test_nan_and_infinity_in_a_body_are_refused(api_for) -> None:
    api = api_for(unique())
    await _stream(api)
    for token in (b"NaN", b"Infinity", b"-Infinity", b"1e400"):
        raw = json.dumps({**EVENT, "payload": {"x": "@"}}).encode().replace(b'"@"', token)
        status, body, got = await _raw(api, "POST", "/api/v1/events", raw)
        assert (status, got) == (400, PROBLEM), (token, status, body)
        status, body, _ = await _raw(api, "POST", "/api/v1/events/batch",
                                     b'{"events": [' + raw + b"]}")
        assert status == 400, (token, status, body)


# --- 3. unicode digits in ids ---------------------------------------------------------------


async def test_unicode_digits_in_schema_ids_are_not_found(api_for) -> None:
    api = api_for(unique())
    for ref in ("²", "٣", "9" * 40):
        status, body = await api.get(f"/api/v1/schemas/{quote(ref)}")
        assert status == 404 and body["code"] == "not_found", (ref, status, body)
        status, body = await api.post(f"/api/v1/schemas/{quote(ref)}/validate", {"x": 1})
        assert status == 404, (ref, status, body)
        status, body = await api.get(f"/schema-registry/schemas/ids/{quote(ref)}")
        assert status == 404 and body["error_code"] == 40403, (ref, status, body)
    status, body = await api.get("/schema-registry/subjects/x-value/versions/%C2%B2")
    assert status == 422, body
    status, body = await api.get("/api/v1/event-sourcing/aggregate/a1/events?from_version=%C2%B2")
    assert status in (400, 503), body  # 503 only while the owner is moving


# --- 4. batch body limit --------------------------------------------------------------------


async def test_a_batch_body_over_the_byte_limit_is_413(limited, http) -> None:
    api = _api(limited, http, unique())
    await _stream(api)
    events = [{**EVENT, "aggregate_id": f"u{i}", "payload": {"pad": "x" * 900}}
              for i in range(80)]  # ~80 kB: within 1000 events of 1 MiB, over 64 KiB
    status, body = await api.post("/api/v1/events/batch", {"events": events})
    assert status == 413 and body["code"] == "payload_too_large", body
    assert body["limit"] == 65536
    status, body = await api.post("/api/v1/events/batch", {"events": events[:40]})
    assert status == 201, body


# --- 5. WebSockets per tenant ---------------------------------------------------------------


def _upgrade_headers() -> dict[str, str]:
    return {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}


async def test_websockets_per_tenant_are_bounded_with_a_429(limited, http) -> None:
    group, port = limited
    tenant, other = unique(), unique()
    api, other_api = _api(limited, http, tenant), _api(limited, http, other)
    name, other_name = await _stream(api), await _stream(other_api)
    ws_url = f"ws://127.0.0.1:{port}/ws/events/"
    first = await http.ws_connect(ws_url + name, headers=api.headers())
    second = await http.ws_connect(ws_url + name, headers=api.headers())
    try:
        for ws in (first, second):
            assert (await ws.receive_json(timeout=30))["type"] == "subscribed"
        async with http.get(f"{group.url(port)}/ws/events/{name}",
                            headers=api.headers(_upgrade_headers())) as resp:
            assert resp.status == 429 and resp.content_type == PROBLEM
            problem = await resp.json(content_type=None)
            assert problem["code"] == "rate_limited" and problem["limit"] == 2
            assert resp.headers["Retry-After"]
        # another tenant is not affected
        third = await http.ws_connect(ws_url + other_name, headers=other_api.headers())
        assert (await third.receive_json(timeout=30))["type"] == "subscribed"
        await third.close()
    finally:
        await first.close()
    # a closed connection frees its slot (the server notices the close within a poll)
    deadline = time.monotonic() + 10
    while True:
        try:
            again = await http.ws_connect(ws_url + name, headers=api.headers())
            break
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 429 and time.monotonic() < deadline
            await asyncio.sleep(0.2)
    assert (await again.receive_json(timeout=30))["type"] == "subscribed"
    await again.close()
    await second.close()


# --- 6. Faust's own web endpoints -----------------------------------------------------------


async def test_faust_table_and_router_endpoints_are_404_problems(bus, http, api_for) -> None:
    group, port = bus
    victim, attacker = unique(), unique()
    aggregate = unique("user_")
    status, body = await api_for(victim).post(APPEND, {
        "aggregate_id": aggregate, "aggregate_type": "User", "event_type": "user.created",
        "event_data": {"email": "secret@victim"}})
    assert status in (200, 201), body
    headers = {"Authorization": f"Bearer {group.token(attacker)}"}
    key = quote(f"{victim}/{aggregate}", safe="")
    for path in (f"/table/sourcing_aggregates/{key}/", "/table/", "/table/sourcing_events/",
                 "/router/", "/router/sourcing_aggregates/", f"/router/sourcing_aggregates/{key}/"):
        async with http.get(group.url(port) + path, headers=headers) as resp:
            text = await resp.text()
            assert resp.status == 404 and resp.content_type == PROBLEM, (path, resp.status, text)
            assert "secret@victim" not in text
            assert json.loads(text)["code"] == "not_found"


# --- 7. /health -----------------------------------------------------------------------------


async def test_health_details_only_for_operators_and_admins(bus, http) -> None:
    group, port = bus
    url = group.url(port) + "/health"
    for headers in ({}, {"Authorization": "Bearer not-a-jwt"},
                    {"Authorization": f"Bearer {group.token(unique(), roles=['reader'])}"}):
        async with http.get(url, headers=headers) as resp:
            body = await resp.json()
            assert resp.status in (200, 503) and set(body) == {"status"}, (headers, body)
            assert body["status"] in ("ok", "degraded")
    for role in ("operator", "admin"):
        token = group.token(unique(), roles=[role])
        async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
            body = await resp.json()
            assert {"broker", "database", "partitions", "tables"} <= set(body["checks"]), body


# --- 9. reserved tenant ids -----------------------------------------------------------------


@pytest.mark.parametrize("tenant", ["proc", "retry", "sourcing", "ingress", "deadletter",
                                    "metadata", "delivery-status"])
async def test_a_token_for_a_reserved_tenant_is_refused(bus, http, tenant: str) -> None:
    group, port = bus
    token = jwt.encode({"sub": "x", "tenant_id": tenant, "exp": int(time.time()) + 300},
                       group.settings.jwt_signing_key(), "HS256")
    async with http.get(group.url(port) + "/api/v1/streams",
                        headers={"Authorization": f"Bearer {token}"}) as resp:
        body = await resp.json(content_type=None)
        assert resp.status == 401 and body["code"] == "unauthenticated", body
        assert "reserved" in body["detail"]


# --- 10. hostile path parameters --------------------------------------------------------------

HOSTILE_IDS = ["a%00b", "%00", "a%0Ab", "%7F", "x" * 300, "%C2%85"]
ID_PATHS = ["/api/v1/streams/{}", "/api/v1/streams/{}/events", "/api/v1/dead-letters/{}",
            "/api/v1/schemas/{}", "/api/v1/schemas/evolution/{}", "/api/v1/events/{}",
            "/api/v1/events/{}/processing-history", "/api/v1/subscriptions/{}",
            "/api/v1/subscriptions/{}/status", "/api/v1/consumer-groups/{}/lag",
            "/api/v1/event-sourcing/aggregate/{}/events", "/api/v1/read-models/{}",
            "/api/v1/read-models/x/documents/{}", "/api/v1/stream-processors/{}",
            "/api/v1/patterns/{}", "/schema-registry/subjects/{}/versions",
            "/schema-registry/schemas/ids/{}"]


async def test_ids_with_control_characters_or_too_long_are_4xx_never_5xx(api_for) -> None:
    api = api_for(unique())
    failures = []
    for template in ID_PATHS:
        for ident in HOSTILE_IDS:
            path = template.format(ident)
            status, body = await api.get(path)
            if not 400 <= status < 500:
                failures.append((path[:80], status, str(body)[:120]))
    for ident in HOSTILE_IDS[:2]:
        status, body = await api.post(f"/api/v1/dead-letters/{ident}/redrive", {})
        if not 400 <= status < 500:
            failures.append((ident, status, body))
    status, body = await api.get("/api/v1/dead-letters?before=%00&reason=%00")
    if status != 400:
        failures.append(("query NUL", status, body))
    # bulk redrive filters of the wrong JSON type (schemathesis found a number as `reason`: 500)
    for bad in ({"reason": 5.5}, {"stage": ["x"]}, {"event_type": {}}, {"limit": [1]},
                {"limit": 1.5}, {"limit": True}):
        status, body = await api.post("/api/v1/dead-letters/redrive", bad)
        if status != 400:
            failures.append((bad, status, body))
    assert not failures, failures
