"""Hostile HTTP input at the unit level (ADR 0012): the JSON parser, path parameters, problem
bodies without driver text, reserved tenant ids, WebSocket slots, and the middleware itself
(served by a real aiohttp server with stand-in handlers, no broker needed)."""

from __future__ import annotations

import json
import logging
import time
from types import SimpleNamespace
from typing import Any

import jwt
import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from esb import cli
from esb.api_spec import Route
from esb.app import faust_settings
from esb.auth import Authenticator, mint_token
from esb.authz import Permission
from esb.errors import (
    AuthenticationError,
    BrokerUnavailable,
    EsbError,
    InvalidRequest,
    RateLimited,
    StorageUnavailable,
    redact,
)
from esb.jsonsafe import depth_exceeds as json_depth_exceeds
from esb.settings import Settings
from esb.tenancy import RESERVED_TENANT_IDS, TenantSlots, check_tenant_id
from esb.views import ops
from esb.views.http import (
    HttpLimits,
    ascii_int,
    auth_middleware,
    check_path_params,
    parse_json,
    read_body,
    read_json,
)

SECRET = "s" * 40
DSN_TEXT = ('connection failed: connection to server at "db-7.internal.corp" (10.1.2.3), '
            'port 5432 failed: FATAL: password authentication failed for user "esb"')


# --- 1. JSON depth ------------------------------------------------------------------------


def test_a_200k_deep_body_is_a_400_without_recursing() -> None:
    body = b"[" * 200_000 + b"]" * 200_000
    with pytest.raises(InvalidRequest, match="deeper than 64"):
        parse_json(body)
    with pytest.raises(InvalidRequest):
        parse_json(b'{"a":' * 200_000 + b"1" + b"}" * 200_000)
    with pytest.raises(InvalidRequest):  # unclosed: json.loads would recurse before failing
        parse_json(b"[" * 200_000)


@pytest.mark.parametrize(("body", "limit", "deeper"), [
    (b"[[[1]]]", 3, False),
    (b"[[[[1]]]]", 3, True),
    (b'{"b": [[[1]]]}', 4, False),
    (b'{"b": [[[1]]]}', 3, True),
    (b'{"a": "[[[[[[[[[[", "b": [[1]]}', 3, False),       # brackets in strings do not count
    (b'["x[", "]y", [[{"k": "}}}"}]]]', 3, True),
    (b'["x[", "]y", [{"k": "}}}"}]]', 3, False),
    (b'["\\\\", [[[[1]]]]]', 4, True),                      # an escaped backslash ends no string
    (b'["\\"[[[[[[", [1]]', 2, False),                     # an escaped quote ends no string
    (b'["\\\\\\"[[[[[", [1]]', 2, False),
    (b"[" * 10, 3, True),                                   # unbalanced: refused either way
])
def test_depth_scan_honours_strings_and_escapes(body: bytes, limit: int, deeper: bool) -> None:
    assert json_depth_exceeds(body, limit) is deeper
    if not deeper:
        parse_json(body, max_depth=limit)


def test_depth_scan_agrees_with_the_parsed_depth_on_valid_documents() -> None:
    def depth(value: Any) -> int:
        if isinstance(value, dict):
            return 1 + max(map(depth, value.values()), default=0)
        if isinstance(value, list):
            return 1 + max(map(depth, value), default=0)
        return 0

    docs = [{"a": [{"b": [[], {}, "[{"]}, '\\"]']}, [[[["]]]]]"]]]], {"k": {"k": {"k": {}}}},
            ["\\", {"\\\\": "]"}, [[["x"]]]]]
    for doc in docs:
        raw = json.dumps(doc).encode()
        real = depth(doc)
        assert not json_depth_exceeds(raw, real) and json_depth_exceeds(raw, real - 1), doc


# --- 2. NaN / Infinity ----------------------------------------------------------------------


@pytest.mark.parametrize("body", [b'{"x": NaN}', b'{"x": Infinity}', b'{"x": -Infinity}',
                                  b'[1e400]', b'{"x": -1e999}'])
def test_non_finite_numbers_are_refused(body: bytes) -> None:
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        parse_json(body)


def test_nul_characters_are_refused_in_bodies() -> None:
    with pytest.raises(InvalidRequest, match="NUL"):
        parse_json(b'{"x": ["a\\u0000b"]}')
    assert parse_json(b'{"x": "\\\\u0000"}') == {"x": "\\u0000"}  # an escaped backslash


def test_lone_surrogates_are_refused_but_pairs_are_fine() -> None:
    with pytest.raises(InvalidRequest, match="surrogate"):
        parse_json(b'{"x": "\\ud800"}')
    assert parse_json(b'{"x": "\\ud83d\\ude00", "y": 1.5}') == {"x": "\U0001F600", "y": 1.5}


# --- 3 / 10. path parameters ----------------------------------------------------------------


@pytest.mark.parametrize(("raw", "value"), [("12", 12), ("0", 0), ("²", None), ("٣", None),
                                            ("1_0", None), (" 1", None), ("", None),
                                            ("9" * 5000, None), ("2147483648", None)])
def test_ascii_int_accepts_only_ascii_digits_in_range(raw: str, value: int | None) -> None:
    assert ascii_int(raw) == value


@pytest.mark.parametrize("value", ["a\x00b", "a\nb", "\x7f", "\x85", "x" * 257])
def test_path_parameters_with_control_characters_or_too_long_are_400(value: str) -> None:
    with pytest.raises(InvalidRequest):
        check_path_params({"stream_id": value})
    check_path_params({"stream_id": "user_events", "schema_id": "x" * 256, "s": "é²"})


# --- 8. problem bodies without driver text -----------------------------------------------


def _wrapped(error: EsbError, cause: BaseException) -> EsbError:
    try:
        try:
            raise cause
        except BaseException as exc:
            raise error from exc
    except EsbError as exc:
        return exc


def test_storage_and_broker_errors_never_show_the_driver_message() -> None:
    err = _wrapped(StorageUnavailable(f"database unavailable: {DSN_TEXT}"),
                   psycopg.OperationalError(DSN_TEXT))
    body = err.to_problem()
    assert body["code"] == "storage_unavailable" and body["status"] == 503
    assert "internal.corp" not in json.dumps(body) and "5432" not in json.dumps(body)
    # even without a cause, these classes never show their message
    body = BrokerUnavailable("cannot connect to Kafka: kafka-3.internal:9092 refused",
                             topic="esb.acme.x.normal").to_problem()
    assert "internal" not in json.dumps(body) and body["code"] == "broker_unavailable"
    assert "topic" not in body


def test_any_error_wrapping_a_driver_error_hides_its_message_but_keeps_safe_details() -> None:
    err = _wrapped(EsbError("SELECT secret FROM t failed: relation missing", retry_after=1,
                            sql="SELECT secret FROM t"), psycopg.errors.UndefinedTable("x"))
    body = err.to_problem()
    assert "SELECT" not in json.dumps(body) and body["retry_after"] == 1
    assert "sql" not in body and body["code"] == "esb_error"
    # our own messages, and `raise ... from None`, are shown as written
    plain = InvalidRequest("stream_name must be lowercase", field="stream_name").to_problem()
    assert plain["detail"] == "stream_name must be lowercase" and plain["field"] == "stream_name"


def test_redact_removes_credentials() -> None:
    text = redact("postgresql://esb:hunter2@db:5432/x redis://:pw@r:6379 password=abc token: 'q'")
    assert "hunter2" not in text and ":pw@" not in text and "abc" not in text and "'q'" not in text


# --- 9. reserved tenant ids -----------------------------------------------------------------


@pytest.mark.parametrize("tenant", ["proc", "retry", "sourcing", "ingress", "deadletter",
                                    "metadata", "delivery-status", "normal"])
def test_reserved_tenant_ids_are_refused_when_verifying_and_minting(tmp_path, tenant: str
                                                                    ) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret=SECRET)
    assert tenant in RESERVED_TENANT_IDS
    with pytest.raises(InvalidRequest, match="reserved"):
        mint_token(settings, tenant=tenant)
    token = jwt.encode({"sub": "x", "tenant_id": tenant, "exp": int(time.time()) + 60}, SECRET,
                       "HS256")
    with pytest.raises(AuthenticationError, match="reserved"):
        Authenticator(settings).authenticate(f"Bearer {token}")


@pytest.mark.parametrize("tenant", ["Acme", "a.b", "a/b", "", "x" * 64, "-a"])
def test_malformed_tenant_ids_are_refused(tenant: str) -> None:
    with pytest.raises(InvalidRequest):
        check_tenant_id(tenant)


def test_esb_token_refuses_a_reserved_tenant_with_a_clear_message(tmp_path, monkeypatch,
                                                                  capsys) -> None:
    monkeypatch.setenv("ESB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ESB_JWT_SECRET", SECRET)
    from esb.settings import get_settings

    get_settings.cache_clear()
    try:
        assert cli.main(["token", "--tenant", "proc"]) == 2
        err = capsys.readouterr().err
        assert "reserved" in err and "proc" in err and "Traceback" not in err
        assert cli.main(["token", "--tenant", "acme"]) == 0
    finally:
        get_settings.cache_clear()


# --- 4 / 5. settings, WebSocket slots, Faust blueprints ------------------------------------


def test_limits_are_settings_with_defaults(tmp_path, monkeypatch) -> None:
    settings = Settings(data_dir=tmp_path)
    assert (settings.max_batch_bytes, settings.max_json_depth, settings.max_ws_per_tenant) == (
        16 << 20, 64, 32)
    monkeypatch.setenv("ESB_MAX_BATCH_BYTES", "100000")
    monkeypatch.setenv("ESB_MAX_WS_PER_TENANT", "3")
    assert Settings(data_dir=tmp_path).max_batch_bytes == 100000
    assert Settings(data_dir=tmp_path).max_ws_per_tenant == 3


def test_tenant_slots_bound_connections_per_tenant_and_release_them() -> None:
    slots = TenantSlots(2)
    with slots.hold("a"), slots.hold("a"), slots.hold("b"):
        with pytest.raises(RateLimited) as refused, slots.hold("a"):
            pass
        assert refused.value.http_status == 429 and refused.value.details["retry_after"]
    assert slots.open == {}
    with slots.hold("a"):
        assert slots.open == {"a": 1}


def test_faust_router_and_table_blueprints_are_off(tmp_path) -> None:
    conf = faust_settings(Settings(data_dir=tmp_path))
    assert conf["web_router_enabled"] is False and conf["web_tables_enabled"] is False


# --- 7. /health checks ----------------------------------------------------------------------


class _Conn:
    async def __aenter__(self) -> _Conn:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def execute(self, sql: str) -> None:
        return None


def _fake_app(consumer_health: Any = None) -> Any:
    async def broker_count() -> int:
        return 1

    runtime = SimpleNamespace(
        admin=SimpleNamespace(broker_count=broker_count),
        database=SimpleNamespace(connection=_Conn),
        catalog=SimpleNamespace(current=SimpleNamespace(items={})))
    if consumer_health is not None:
        runtime.consumer_health = consumer_health
    return SimpleNamespace(runtime=runtime, ingress_router=None,
                           consumer=SimpleNamespace(assignment=lambda: set()),
                           tables=SimpleNamespace(recovery=SimpleNamespace(
                               completed=SimpleNamespace(is_set=lambda: True))))


async def test_health_includes_stuck_consumer_loops() -> None:
    checks = await ops.health_checks(_fake_app())
    assert "consumers" not in checks and all(c["ok"] for c in checks.values())
    stuck = {"ok": False, "loops": {"projection": {"backoff_s": 8, "error": "OperationalError"}}}
    checks = await ops.health_checks(_fake_app(lambda: stuck))
    assert checks["consumers"]["ok"] is False and checks["consumers"]["loops"]["projection"]

    async def fine() -> dict[str, Any]:
        return {"ok": True, "loops": {}}

    assert (await ops.health_checks(_fake_app(fine)))["consumers"]["ok"] is True


# --- the middleware, served ----------------------------------------------------------------


async def _serve(tmp_path: Any, limits: HttpLimits) -> TestClient:
    settings = Settings(data_dir=tmp_path, jwt_secret=SECRET)

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"body": await read_json(request, 1 << 30),
                                  "id": request.match_info.get("item_id")})

    async def storage_down(request: web.Request) -> web.Response:
        try:
            raise psycopg.OperationalError(DSN_TEXT)
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(f"database unavailable: {exc}") from exc

    async def nul_to_postgres(request: web.Request) -> web.Response:
        raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")

    async def deep(request: web.Request) -> web.Response:
        def down(n: int) -> int:
            return down(n + 1)

        return web.json_response(down(0))

    async def batch(request: web.Request) -> web.Response:
        return web.json_response({"size": len(await read_body(request, 1 << 30))})

    served = [*((m, "/api/v1/items/{item_id}") for m in ("GET", "POST", "PUT", "DELETE")),
              ("GET", "/api/v1/storage"), ("GET", "/api/v1/nul"), ("GET", "/api/v1/deep"),
              ("POST", "/api/v1/events/batch")]
    rows = [Route(m, p, f"op{i}", "test route", "test", needs=Permission.READ)
            for i, (m, p) in enumerate(served)]  # each route declares its permission
    app = web.Application(middlewares=[auth_middleware(Authenticator(settings), limits, rows)])
    app.router.add_route("*", "/api/v1/items/{item_id}", echo)
    app.router.add_get("/api/v1/storage", storage_down)
    app.router.add_get("/api/v1/nul", nul_to_postgres)
    app.router.add_get("/api/v1/deep", deep)
    app.router.add_post("/api/v1/events/batch", batch)
    client = TestClient(TestServer(app))
    await client.start_server()
    client.token = mint_token(settings, tenant="acme")  # type: ignore[attr-defined]
    return client


async def _call(client: TestClient, method: str, path: str, **kw: Any) -> tuple[int, Any, str]:
    headers = {"Authorization": f"Bearer {client.token}"}  # type: ignore[attr-defined]
    async with client.request(method, path, headers=headers, **kw) as resp:
        text = await resp.text()
        return resp.status, json.loads(text) if text else None, resp.content_type


async def test_middleware_refuses_hostile_input_with_problem_bodies(tmp_path, caplog) -> None:
    client = await _serve(tmp_path, HttpLimits(max_json_depth=8, max_batch_bytes=70_000))
    try:
        status, body, ctype = await _call(client, "POST", "/api/v1/items/x",
                                          data=b"[" * 9 + b"]" * 9)
        assert (status, ctype) == (400, "application/problem+json") and body["limit"] == 8
        assert (await _call(client, "POST", "/api/v1/items/x", data=b"[" * 8 + b"]" * 8))[0] == 200
        assert (await _call(client, "POST", "/api/v1/items/x", data=b"[NaN]"))[0] == 400
        status, body, _ = await _call(client, "GET", "/api/v1/items/a%00b")
        assert status == 400 and body["parameter"] == "item_id"
        assert (await _call(client, "GET", "/api/v1/items/" + "x" * 300))[0] == 400
        assert (await _call(client, "GET", "/api/v1/items/ok?before=%00"))[0] == 400
        status, body, _ = await _call(client, "POST", "/api/v1/events/batch", data=b"x" * 70_001)
        assert status == 413 and body["code"] == "payload_too_large"
        assert (await _call(client, "POST", "/api/v1/events/batch", data=b"x" * 70_000))[0] == 200

        async def chunks() -> Any:
            for _ in range(3):
                yield b"x" * 30_000

        status, body, _ = await _call(client, "POST", "/api/v1/events/batch", data=chunks())
        assert status == 413  # no Content-Length: counted while reading
        assert (await _call(client, "GET", "/api/v1/deep"))[0] == 400
        assert (await _call(client, "GET", "/api/v1/nul"))[0] == 400
        with caplog.at_level(logging.WARNING, logger="esb.views.http"):
            status, body, _ = await _call(client, "GET", "/api/v1/storage")
        assert status == 503 and body["code"] == "storage_unavailable"
        assert "internal.corp" not in json.dumps(body) and "password" not in json.dumps(body)
        assert "db-7.internal.corp" in caplog.text  # the operator still sees why
    finally:
        await client.close()


async def test_unauthenticated_health_has_no_details(tmp_path) -> None:
    """Anyone may ask whether the bus is up; only operators and admins see why."""
    settings = Settings(data_dir=tmp_path, jwt_secret=SECRET)
    app = _fake_app()
    app.runtime.auth = Authenticator(settings)
    request = SimpleNamespace(headers={})
    assert ops._caller(app, request) is None  # type: ignore[arg-type]
    request.headers = {"Authorization": "Bearer nonsense"}
    assert ops._caller(app, request) is None  # type: ignore[arg-type]
    for roles, sees in ([], False), (["operator"], True), (["admin"], True):
        request.headers = {"Authorization": "Bearer " + mint_token(settings, tenant="acme",
                                                                   roles=roles)}
        assert ops._caller(app, request).sees_operations is sees  # type: ignore[arg-type,union-attr]
