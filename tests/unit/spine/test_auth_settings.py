"""Authentication, settings and idempotency (pure or in-memory)."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from esb.auth import Authenticator, mint_token
from esb.errors import AuthenticationError, ConfigurationError, PermissionDenied, ValidationFailed
from esb.idempotency import IdempotencyStore, MemoryBackend, StoredResponse
from esb.settings import Settings, get_settings

SECRET = "s" * 40


def test_hs256_round_trip_and_tenant_check(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret=SECRET)
    who = Authenticator(settings).authenticate("Bearer " + mint_token(settings, tenant="acme",
                                                                      roles=["operator"]))
    assert who.tenant == "acme" and who.is_operator
    assert who.check_tenant("acme") == "acme"
    with pytest.raises(PermissionDenied):
        who.check_tenant("other")


@pytest.mark.parametrize("header", [None, "Basic abc", "Bearer", "Bearer x.y.z"])
def test_bad_credentials_are_401(tmp_path, header) -> None:
    with pytest.raises(AuthenticationError):
        Authenticator(Settings(data_dir=tmp_path, jwt_secret=SECRET)).authenticate(header)


def test_expired_wrong_key_and_missing_tenant(tmp_path) -> None:
    auth = Authenticator(Settings(data_dir=tmp_path, jwt_secret=SECRET))
    now = int(time.time())
    expired = jwt.encode({"sub": "a", "tenant_id": "t", "exp": now - 10}, SECRET, "HS256")
    wrong = jwt.encode({"sub": "a", "tenant_id": "t", "exp": now + 60}, "x" * 40, "HS256")
    no_tenant = jwt.encode({"sub": "a", "exp": now + 60}, SECRET, "HS256")
    bad_tenant = jwt.encode({"sub": "a", "tenant_id": "../etc", "exp": now + 60}, SECRET, "HS256")
    none_alg = jwt.encode({"sub": "a", "tenant_id": "t", "exp": now + 60}, None, "none")
    for token, message in [(expired, "expired"), (wrong, "invalid"), (no_tenant, "tenant_id"),
                           (bad_tenant, "not a valid"), (none_alg, "invalid")]:
        with pytest.raises(AuthenticationError, match=message):
            auth.decode(token)


def test_rs256_with_a_public_key(tmp_path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    auth = Authenticator(Settings(data_dir=tmp_path, jwt_algorithm="RS256", jwt_public_key=public))
    token = jwt.encode({"sub": "svc", "tenant_id": "acme", "exp": int(time.time()) + 60}, key,
                       "RS256")
    assert auth.decode(token).tenant == "acme"
    with pytest.raises(ConfigurationError):
        Authenticator(Settings(data_dir=tmp_path, jwt_algorithm="RS256"))


def test_dev_secret_is_created_once_and_private(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    key = settings.jwt_signing_key()
    assert key == settings.jwt_signing_key() and len(key) >= 32
    assert (tmp_path / "dev-jwt-secret").stat().st_mode & 0o077 == 0


def test_settings_from_env_and_errors_name_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("ESB_BROKER", "kafka://a:1,kafka://b:2")
    monkeypatch.setenv("ESB_JWT_SECRET", SECRET)
    get_settings.cache_clear()
    try:
        settings = get_settings()
        assert settings.bootstrap_servers == ["a:1", "b:2"]
        assert SECRET not in repr(settings)  # secrets never in reprs or logs
        monkeypatch.setenv("ESB_DEFAULT_PARTITIONS", "zero")
        get_settings.cache_clear()
        with pytest.raises(ConfigurationError, match="ESB_DEFAULT_PARTITIONS"):
            get_settings()
        monkeypatch.setenv("ESB_DEFAULT_PARTITIONS", "3")
        monkeypatch.setenv("ESB_JWT_SECRET", "short")
        get_settings.cache_clear()
        with pytest.raises(ConfigurationError, match="ESB_JWT_SECRET"):
            get_settings()
    finally:
        get_settings.cache_clear()


async def test_idempotency_claim_replay_and_conflicts() -> None:
    store = IdempotencyStore(MemoryBackend(), wait_s=0.3)
    assert await store.claim("t", "k", "fp1") is None
    with pytest.raises(Exception, match="in progress"):
        await store.claim("t", "k", "fp1")  # first still running
    await store.complete("t", "k", "fp1", StoredResponse(201, {"event_id": "e"}))
    assert await store.claim("t", "k", "fp1") == StoredResponse(201, {"event_id": "e"})
    with pytest.raises(ValidationFailed, match="different request body"):
        await store.claim("t", "k", "fp2")
    assert await store.claim("other-tenant", "k", "fp2") is None  # keys are per tenant
    await store.release("other-tenant", "k")
    assert await store.claim("other-tenant", "k", "fp3") is None


async def test_idempotency_waiter_gets_the_first_answer() -> None:
    store = IdempotencyStore(MemoryBackend(), wait_s=5)
    assert await store.claim("t", "k", "fp") is None

    async def finish() -> None:
        await asyncio.sleep(0.2)
        await store.complete("t", "k", "fp", StoredResponse(201, {"n": 1}))

    task = asyncio.ensure_future(finish())
    assert (await store.claim("t", "k", "fp")).body == {"n": 1}
    await task


def test_basic_auth_carries_the_jwt_as_password(tmp_path) -> None:
    import base64

    settings = Settings(data_dir=tmp_path, jwt_secret=SECRET)
    token = mint_token(settings, tenant="acme")
    basic = base64.b64encode(f"any-user:{token}".encode()).decode()
    assert Authenticator(settings).authenticate(f"Basic {basic}").tenant == "acme"
    with pytest.raises(AuthenticationError):
        Authenticator(settings).authenticate("Basic " + base64.b64encode(b"user:").decode())


def test_esb_token_without_a_configured_key_mints_for_the_dev_install(
        tmp_path, monkeypatch, capsys) -> None:
    """A new user runs `esb up` in one terminal and `esb token` in another, with no ESB_MODE
    set (production by default): the token is minted with the data directory's development
    key, which the `esb up` workers (development mode) accept."""
    from esb.cli import main

    monkeypatch.setenv("ESB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ESB_MODE", "production")
    monkeypatch.delenv("ESB_JWT_SECRET", raising=False)
    get_settings.cache_clear()
    try:
        assert main(["token", "--tenant", "acme"]) == 0
        token = capsys.readouterr().out.strip()
        dev = Settings(data_dir=tmp_path, mode="development")
        assert Authenticator(dev).authenticate(f"Bearer {token}").tenant == "acme"
    finally:
        get_settings.cache_clear()
