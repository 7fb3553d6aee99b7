"""The role model (ADR 0015) as data: every route declares its permission, roles grant fixed
sets, scopes narrow, production mode refuses weak auth settings. No bus needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from esb import api_spec
from esb.api_spec import ROUTES, Route
from esb.auth import Authenticator, check_security_settings, mint_token
from esb.authz import (
    CHECKS_SCOPE_IN_BODY,
    GRANTS,
    Permission,
    Role,
    ScopeError,
    authorize,
    parse_roles,
    parse_scopes,
    permissions_of,
)
from esb.errors import AuthenticationError, ConfigurationError, MissingRole, OutOfScope
from esb.settings import Settings

SECRET = "s" * 40
P = Permission

#: POSTs that change nothing (queries, validation, compatibility checks): a reader may call them.
READ_ONLY_POSTS = frozenset({"query_events", "validate_against_schema", "reconstruct_aggregate",
                             "cf_lookup_schema", "cf_check_compatibility_all",
                             "cf_check_compatibility"})


def test_a_row_without_a_permission_cannot_be_declared() -> None:
    with pytest.raises(TypeError, match="needs"):
        Route("GET", "/api/v1/x", "x", "x", "x")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="PUBLIC"):
        api_spec.check_table([Route("GET", "/x", "x", "x", "x", public=True, needs=P.READ)])
    with pytest.raises(ValueError, match="PUBLIC"):
        api_spec.check_table([Route("GET", "/x", "x", "x", "x", needs=P.PUBLIC)])


def test_every_row_declares_a_permission_consistent_with_public() -> None:
    api_spec.check_table()
    for r in ROUTES:
        assert isinstance(r.needs, Permission), r.operation_id
        assert r.public == (r.needs is P.PUBLIC), r.operation_id


def test_reads_never_change_state() -> None:
    """A row a reader may call is a GET or a known read-only POST (a new POST defaulting to
    read fails here until someone decides)."""
    for r in ROUTES:
        if r.needs is P.READ and r.method != "GET":
            assert r.operation_id in READ_ONLY_POSTS, f"{r.operation_id}: {r.method} needs read"


def test_sensitive_operations_need_more_than_read_or_publish() -> None:
    """The issue's examples: stream creation, compatibility, subject deletes are admin; redrive,
    replay are operate; webhook secret rotation belongs to the subscription's manager."""
    ops = api_spec.by_operation()
    for op in ("create_stream", "cf_put_config", "cf_put_subject_config", "cf_delete_subject",
               "cf_delete_version", "register_schema", "create_processor"):
        assert ops[op].needs is P.ADMIN, op
    for op in ("redrive_dead_letters", "redrive_dead_letter", "replay_subscription",
               "rebuild_read_model", "rebalance_consumer_group"):
        assert ops[op].needs is P.OPERATE, op
    assert ops["rotate_subscription_secret"].needs is P.SUBSCRIBE
    assert ops["publish_event"].needs is ops["append_event"].needs is P.PUBLISH
    assert ops["ws_live_events"].needs is P.SUBSCRIBE


def test_role_grants() -> None:
    # a tenant's admin may do everything in its tenant but raise its own limits
    assert permissions_of(["admin"]) == set(Permission) - {P.PUBLIC, P.LIMITS}
    assert permissions_of(["operator"]) == {P.READ, P.OPERATE, P.LIMITS}
    assert permissions_of(["publisher"]) == {P.PUBLISH}
    assert permissions_of(["subscriber"]) == {P.READ, P.SUBSCRIBE}
    assert permissions_of(["reader"]) == {P.READ}
    assert permissions_of([]) == set()
    assert permissions_of(["root", "superuser", "ADMIN"]) == set()  # unknown names grant nothing
    assert permissions_of(["publisher", "reader"]) == {P.PUBLISH, P.READ}
    assert set(GRANTS) == set(Role)


def test_roles_claim_shapes() -> None:
    assert parse_roles(None) == frozenset()
    assert parse_roles("publisher reader") == {"publisher", "reader"}
    assert parse_roles(["admin"]) == {"admin"}
    with pytest.raises(ScopeError):
        parse_roles({"admin": True})


def test_scopes_parse_and_narrow() -> None:
    scopes = parse_scopes(["publish:orders-*", "publish:type:order.*", "read:audit"])
    publish = scopes[P.PUBLISH]
    assert publish.allows(stream="orders-eu", event_type="order.placed")
    assert not publish.allows(stream="payments", event_type="order.placed")
    assert not publish.allows(stream="orders-eu", event_type="payment.made")
    assert scopes[P.READ].allows(stream="audit") and not scopes[P.READ].allows(stream="audits")
    assert parse_scopes(None) == {}
    for bad in (["publish:"], ["root:x"], ["public:x"], ["publish:type:"], [1], 5,
                ["publish:x"] * 65):
        with pytest.raises(ScopeError):
            parse_scopes(bad)


def test_authorize_against_the_table() -> None:
    reader = permissions_of(["reader"])
    authorize(reader, {}, needs=P.READ, operation_id="list_streams", stream=None)
    authorize(frozenset(), {}, needs=P.PUBLIC, operation_id="health", stream=None)
    with pytest.raises(MissingRole) as refused:
        authorize(reader, {}, needs=P.ADMIN, operation_id="create_stream", stream=None)
    problem = refused.value.to_problem()
    assert (problem["status"], problem["code"], problem["required"]) == (403, "missing_role",
                                                                         "admin")
    assert problem["granted_by"] == ["admin"]

    narrowed = parse_scopes(["read:orders-*"])
    authorize(reader, narrowed, needs=P.READ, operation_id="get_stream", stream="orders-1")
    with pytest.raises(OutOfScope):
        authorize(reader, narrowed, needs=P.READ, operation_id="get_stream", stream="payments")
    with pytest.raises(OutOfScope):  # a list route cannot be narrowed: refused, not widened
        authorize(reader, narrowed, needs=P.READ, operation_id="list_streams", stream=None)
    publisher = permissions_of(["publisher"])
    authorize(publisher, parse_scopes(["publish:orders-*"]), needs=P.PUBLISH,
              operation_id="publish_event", stream=None)  # checked per event by the publisher


def test_scope_checking_publish_rows_exist() -> None:
    ops = api_spec.by_operation()
    for op in CHECKS_SCOPE_IN_BODY:
        assert ops[op].needs is P.PUBLISH, op


def test_tokens_carry_roles_and_scopes(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret=SECRET, mode="development")
    auth = Authenticator(settings)
    who = auth.authenticate("Bearer " + mint_token(settings, tenant="acme"))
    assert who.roles == {"admin"}  # minted without roles: an admin of its tenant
    nobody = auth.authenticate("Bearer " + mint_token(settings, tenant="acme", roles=[]))
    assert nobody.permissions == set()
    scoped = auth.authenticate("Bearer " + mint_token(settings, tenant="acme",
                                                      roles=["publisher"],
                                                      scopes=["publish:orders-*"]))
    narrowing = scoped.narrowing(P.PUBLISH)
    assert narrowing is not None and narrowing.allows(stream="orders-x")
    assert scoped.narrowing(P.READ) is None
    bad = mint_token(settings, tenant="acme", roles=["publisher"], scopes=["nope:x"])
    with pytest.raises(AuthenticationError, match="esb_scopes"):
        auth.authenticate("Bearer " + bad)


def test_production_refuses_weak_auth_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as refused:
        Authenticator(Settings(data_dir=tmp_path, mode="production"))
    for name in ("ESB_JWT_ISSUER", "ESB_JWT_AUDIENCE", "ESB_JWT_SECRET"):
        assert name in refused.value.message
    with pytest.raises(ConfigurationError, match="ESB_JWT_AUDIENCE"):
        check_security_settings(Settings(data_dir=tmp_path, mode="production",
                                         jwt_secret=SECRET, jwt_issuer="https://idp"))
    with pytest.raises(ConfigurationError, match="https"):
        check_security_settings(Settings(
            data_dir=tmp_path, mode="production", jwt_issuer="i", jwt_audience="a",
            jwt_jwks_url="http://idp/jwks"))
    with pytest.raises(ConfigurationError, match="ESB_JWT_SECRET"):  # no generated dev key
        mint_token(Settings(data_dir=tmp_path, mode="production", jwt_issuer="i",
                            jwt_audience="a"), tenant="acme")
    ok = Settings(data_dir=tmp_path, mode="production", jwt_secret=SECRET, jwt_issuer="i",
                  jwt_audience="a")
    auth = Authenticator(ok)
    assert auth.authenticate("Bearer " + mint_token(ok, tenant="acme")).tenant == "acme"
    assert not (tmp_path / "dev-jwt-secret").exists()
    Authenticator(Settings(data_dir=tmp_path, mode="development"))  # development: dev key


async def test_a_served_route_without_a_row_is_refused(tmp_path: Path) -> None:
    """Fail closed: the middleware answers 403 for a route the table does not declare."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from esb.views.http import auth_middleware

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    settings = Settings(data_dir=tmp_path, jwt_secret=SECRET, mode="development")
    rows = [Route("GET", "/api/v1/declared", "declared", "d", "t", needs=P.READ)]
    app = web.Application(middlewares=[auth_middleware(Authenticator(settings), routes=rows)])
    app.router.add_get("/api/v1/declared", ok)
    app.router.add_get("/api/v1/undeclared", ok)
    headers = {"Authorization": "Bearer " + mint_token(settings, tenant="acme")}  # admin
    async with TestClient(TestServer(app)) as client:
        async with client.get("/api/v1/declared", headers=headers) as resp:
            assert resp.status == 200
        async with client.get("/api/v1/undeclared", headers=headers) as resp:
            body = await resp.json()
            assert (resp.status, body["code"], body["required"]) == (403, "missing_role",
                                                                     "undeclared")
        async with client.get("/api/v1/nowhere", headers=headers) as resp:
            assert resp.status == 404  # unmatched paths still get their 404
