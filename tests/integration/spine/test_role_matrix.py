"""The role matrix (ADR 0015), generated from the route table: every row of
``esb.api_spec.ROUTES``, called by a token of every role (and one without roles), is allowed
(anything but 401/403) exactly when the role grants the row's ``needs``, and refused otherwise
with a 403 problem body whose ``code`` is ``missing_role``. A new row is covered as soon as it
exists; a served route without a row is refused by the middleware (and fails test_api_spec).

Also here: ``esb_scopes`` narrowing on the publish paths and a stream-scoped route, and the
production-mode refusal to start without issuer, audience and key.
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import pytest

from esb import api_spec
from esb.api_spec import Resource, Route
from esb.authz import Role, permissions_of
from esb.embedded import free_port, spawn_worker, stop_process
from tests.support import Api, WorkerGroup, eventually, unique

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

#: Columns of the matrix: each role alone, and a token whose roles claim is empty.
COLUMNS: tuple[tuple[str, list[str]], ...] = (*((r.value, [r.value]) for r in Role),
                                              ("no-roles", []))
DENIED = frozenset({401, 403})


def _fill(route: Route) -> str:
    """The row's path with made-up ids: authorization is decided before any lookup."""
    path = route.path
    for param in route.path_params:
        kinds = dict(route.scoped)
        value = "1" if kinds.get(param) in (Resource.SCHEMA_VERSION, Resource.SCHEMA) else (
            "matrix-" + param.replace("_", "-"))
        path = path.replace("{" + param + "}", value)
    return path


async def _call(session: aiohttp.ClientSession, base: str, route: Route, token: str | None
                ) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kwargs: dict[str, Any] = {"headers": headers}
    if route.request:
        kwargs["json"] = {}
    async with session.request(route.method, base + _fill(route), **kwargs) as resp:
        return resp.status, await resp.text()


@pytest.fixture(scope="module")
def tokens(bus: tuple[WorkerGroup, int]) -> dict[str, str]:
    group, _ = bus
    return {name: group.token(unique("rm"), roles=roles) for name, roles in COLUMNS}


def _rows() -> list[Any]:
    return [pytest.param(r, id=r.operation_id) for r in api_spec.ROUTES]


@pytest.mark.parametrize("route", _rows())
async def test_every_role_on_every_route(route: Route, tokens: dict[str, str],
                                         bus: tuple[WorkerGroup, int]) -> None:
    group, port = bus
    failures = []
    async with aiohttp.ClientSession() as session:
        for name, roles in COLUMNS:
            allowed = route.public or route.needs in permissions_of(roles)
            status, text = await _call(session, group.url(port), route, tokens[name])
            if allowed and status in DENIED:
                failures.append(f"{name}: expected allowed, got {status} {text[:300]}")
            if not allowed:
                body = json.loads(text) if status == 403 else {}
                if status != 403 or body.get("code") != "missing_role" \
                        or body.get("required") != route.needs.value:
                    failures.append(f"{name}: expected 403 missing_role, got {status} "
                                    f"{text[:300]}")
        if not route.public:  # and no token at all is a 401, whatever the row needs
            status, _ = await _call(session, group.url(port), route, None)
            if status != 401:
                failures.append(f"no token: expected 401, got {status}")
    assert not failures, f"{route.method} {route.path} needs {route.needs.value}: {failures}"


async def _publish(api: Api, stream: str, event_type: str = "order.placed") -> int:
    status, _ = await api.post("/api/v1/events", {
        "event_type": event_type, "source_capability": "matrix", "stream_name": stream,
        "payload": {"n": 1}})
    return status


async def test_scopes_narrow_publishing_to_matching_streams_and_types(
        bus: tuple[WorkerGroup, int]) -> None:
    group, port = bus
    tenant = unique("rs")
    orders, payments = unique("orders-"), unique("payments-")
    async with aiohttp.ClientSession() as session:
        admin = Api(session, group.url(port), group.token(tenant))
        for name in (orders, payments):
            status, body = await admin.post("/api/v1/streams", {
                "stream_name": name, "source_capability": "matrix", "partitions": 1})
            assert status == 201, body
        narrowed = Api(session, group.url(port), group.token(
            tenant, roles=["publisher"], scopes=["publish:orders-*"]))
        assert await _publish(narrowed, orders) == 201
        status, body = await narrowed.post("/api/v1/events", {
            "event_type": "order.placed", "source_capability": "matrix",
            "stream_name": payments, "payload": {}})
        assert status == 403 and body["code"] == "out_of_scope", body
        # a batch with one event out of scope publishes nothing
        status, body = await narrowed.post("/api/v1/events/batch", {"events": [
            {"event_type": "order.placed", "source_capability": "matrix",
             "stream_name": s, "payload": {}} for s in (orders, payments)]})
        assert status == 403 and body["code"] == "out_of_scope", body
        typed = Api(session, group.url(port), group.token(
            tenant, roles=["publisher"], scopes=["publish:type:order.*"]))
        assert await _publish(typed, payments, "order.paid") == 201
        assert await _publish(typed, orders, "payment.made") == 403
        status, body = await typed.post("/api/v1/event-sourcing/append", {
            "aggregate_id": unique("agg"), "aggregate_type": "Payment",
            "event_type": "payment.made", "event_data": {}})
        assert status == 403 and body["code"] == "out_of_scope", body
        # the narrowed token reads nothing: it has no read role, and read narrowing needs a
        # stream in the path
        reader = Api(session, group.url(port), group.token(
            tenant, roles=["reader"], scopes=["read:orders-*"]))
        assert (await reader.get(f"/api/v1/streams/{orders}"))[0] == 200
        status, body = await reader.get(f"/api/v1/streams/{payments}")
        assert status == 403 and body["code"] == "out_of_scope", body
        status, body = await reader.get("/api/v1/streams")
        assert status == 403 and body["code"] == "out_of_scope", body
        # only the allowed events reached the stream: a sentinel published last is visible
        # once everything before it is (one partition), and the refused batch is not there
        assert await _publish(narrowed, orders, "order.sentinel") == 201

        async def archived() -> Any:
            status, body = await admin.post("/api/v1/events/query", {"stream_name": orders})
            types = [e.get("event_type") or e.get("type") for e in body.get("events", [])]
            return status == 200 and "order.sentinel" in types and types

        assert sorted(await eventually(archived, timeout=30)) == ["order.placed",
                                                                  "order.sentinel"]


def test_production_mode_refuses_to_start_without_issuer_audience_and_key(
        broker_url: str, database_url: str, tmp_path: Any) -> None:
    group = WorkerGroup(broker_url, database_url, tmp_path)
    log = tmp_path / "worker.log"
    proc = spawn_worker({**group.env, "ESB_MODE": "production"}, free_port(), log)
    try:
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.returncode not in (None, 0), "a production worker started without auth"
    finally:
        stop_process(proc)
    text = log.read_text(errors="replace")
    assert "ESB_JWT_ISSUER" in text and "ESB_JWT_AUDIENCE" in text, text[-2000:]
    assert not (tmp_path / group.prefix / "dev-jwt-secret").exists()


@pytest.fixture(scope="module")
def bus(fresh_bus: tuple[WorkerGroup, int]) -> tuple[WorkerGroup, int]:
    """This module's own worker (see ``fresh_bus``)."""
    return fresh_bus
