"""JWKS (ADR 0015): RS256 and ES256 keys from a local aiohttp "identity provider" started here;
rotation fetches a new kid; an unknown kid after the refetch is a 401; a withdrawn key stops
working; a down IdP keeps the cached keys."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from esb.api_spec import Route
from esb.auth import Authenticator
from esb.authz import Permission
from esb.errors import AuthenticationError
from esb.settings import Settings
from esb.views.http import auth_middleware

ISSUER, AUDIENCE = "https://idp.test", "esb"


@dataclass
class Idp:
    """A JWKS endpoint whose key set the test changes; counts fetches."""

    keys: dict[str, Any] = field(default_factory=dict)  # kid -> private key
    fetches: int = 0
    down: bool = False
    url: str = ""

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid, key in self.keys.items():
            algo = (jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey)
                    else jwt.algorithms.ECAlgorithm)
            jwk = algo.to_jwk(key.public_key(), as_dict=True)
            out.append({**jwk, "kid": kid, "use": "sig"})
        return {"keys": out}

    def token(self, kid: str, *, key: Any = None, roles: list[str] | None = None,
              **claims: Any) -> str:
        key = key or self.keys[kid]
        alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        body = {"sub": "svc", "tenant_id": "acme", "roles": roles or ["reader"], "iss": ISSUER,
                "aud": AUDIENCE, "exp": int(time.time()) + 300, **claims}
        return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def idp() -> AsyncIterator[Idp]:
    state = Idp(keys={"rsa-1": _rsa(), "ec-1": ec.generate_private_key(ec.SECP256R1())})

    async def serve(request: web.Request) -> web.Response:
        state.fetches += 1
        if state.down:
            return web.Response(status=503)
        return web.json_response(state.jwks())

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", serve)
    server = TestServer(app)
    await server.start_server()
    state.url = str(server.make_url("/.well-known/jwks.json"))
    try:
        yield state
    finally:
        await server.close()


def _auth(idp: Idp, tmp_path: Path) -> Authenticator:
    auth = Authenticator(Settings(data_dir=tmp_path, mode="development", jwt_jwks_url=idp.url,
                                  jwt_issuer=ISSUER, jwt_audience=AUDIENCE))
    assert auth.jwks is not None
    auth.jwks.cooldown_s = 0.0  # every unknown kid may refetch (the default spaces them)
    return auth


async def test_rs256_and_es256_keys_from_the_jwks(idp: Idp, tmp_path: Path) -> None:
    auth = _auth(idp, tmp_path)
    rs = await auth.authenticate_async("Bearer " + idp.token("rsa-1", roles=["publisher"]))
    es = await auth.authenticate_async("Bearer " + idp.token("ec-1"))
    assert (rs.tenant, rs.roles, es.roles) == ("acme", {"publisher"}, {"reader"})
    assert idp.fetches == 1  # one fetch served both keys
    for bad in (idp.token("rsa-1", aud="someone-else"), idp.token("rsa-1", iss="https://evil"),
                idp.token("rsa-1", key=_rsa()),  # right kid, wrong key
                jwt.encode({"sub": "x", "tenant_id": "acme", "exp": int(time.time()) + 60},
                           "k" * 40, algorithm="HS256", headers={"kid": "rsa-1"})):
        with pytest.raises(AuthenticationError):
            await auth.authenticate_async("Bearer " + bad)


async def test_rotation_fetches_the_new_kid_and_unknown_kids_are_refused(
        idp: Idp, tmp_path: Path) -> None:
    auth = _auth(idp, tmp_path)
    old = idp.token("rsa-1")
    assert (await auth.authenticate_async("Bearer " + old)).tenant == "acme"
    idp.keys = {"rsa-2": _rsa()}  # the IdP rotates: rsa-1 withdrawn, rsa-2 new
    fresh = idp.token("rsa-2", roles=["admin"])
    assert (await auth.authenticate_async("Bearer " + fresh)).roles == {"admin"}
    assert idp.fetches == 2
    with pytest.raises(AuthenticationError, match="unknown key"):  # withdrawn, even if cached
        await auth.authenticate_async("Bearer " + old)
    before = idp.fetches
    with pytest.raises(AuthenticationError, match="unknown key"):
        await auth.authenticate_async("Bearer " + idp.token("nope", key=_rsa()))
    assert idp.fetches == before + 1  # it did look again before refusing


async def test_unknown_kids_are_rate_limited_and_a_down_idp_keeps_keys(
        idp: Idp, tmp_path: Path) -> None:
    auth = _auth(idp, tmp_path)
    good = idp.token("ec-1")
    await auth.authenticate_async("Bearer " + good)
    assert auth.jwks is not None
    auth.jwks.cooldown_s = 60.0
    forged = _rsa()
    for i in range(20):
        with pytest.raises(AuthenticationError):
            await auth.authenticate_async("Bearer " + idp.token(f"forged-{i}", key=forged))
    assert idp.fetches == 1  # a flood of made-up kids costs no fetch within the cooldown
    auth.jwks.cooldown_s = 0.0
    auth.jwks.refresh_s = 0.0  # stale at once: every call refetches
    idp.down = True
    auth._verified.clear()
    assert (await auth.authenticate_async("Bearer " + good)).tenant == "acme"
    assert idp.fetches == 2  # it tried, failed, and kept the cached key


async def test_middleware_verifies_jwks_tokens_and_enforces_roles(idp: Idp,
                                                                  tmp_path: Path) -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    rows = [Route("GET", "/api/v1/things", "list_things", "t", "t", needs=Permission.READ)]
    app = web.Application(middlewares=[auth_middleware(_auth(idp, tmp_path), routes=rows)])
    app.router.add_get("/api/v1/things", ok)
    async with TestClient(TestServer(app)) as client:
        for token, status in ((idp.token("rsa-1", roles=["reader"]), 200),
                              (idp.token("ec-1", roles=["publisher"]), 403),
                              (idp.token("zz", key=_rsa()), 401)):
            async with client.get("/api/v1/things",
                                  headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == status, await resp.text()
                if status == 403:
                    assert (await resp.json())["code"] == "missing_role"
