"""Redis over TLS (ADR 0018): a ``rediss://`` URL with the CA that signed the server reaches
the bus's Redis stores (idempotency keys, the delivery rate limiter); a server whose
certificate that CA did not sign is refused (StorageUnavailable, never plaintext fallback).

The test starts its own ``redis-server`` with a TLS port only, on a free port, with a
self-signed CA generated here by ``openssl``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from esb.delivery.ratelimit import RateLimit
from esb.delivery.ratelimit_redis import RedisRateLimiter
from esb.errors import StorageUnavailable
from esb.idempotency import IdempotencyStore, RedisBackend, StoredResponse
from esb.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.redis]

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
             f"/CN={name}", "-keyout", str(key), "-out", str(cert))
    return key, cert


def _server_cert(directory: Path, ca_key: Path, ca_cert: Path) -> tuple[Path, Path]:
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-keyout", str(key), "-out", str(csr))
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(cert))
    return key, cert


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, Path]]:
    """(port, trusted CA, untrusted CA) of a TLS-only redis-server started for this module."""
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed")
    directory = tmp_path_factory.mktemp("tls")
    ca_key, ca_cert = _ca(directory, "bus-ca")
    _, other_ca = _ca(directory, "other-ca")
    key, cert = _server_cert(directory, ca_key, ca_cert)
    port = _free_port()
    proc = subprocess.Popen(
        [REDIS_SERVER, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key),
         "--tls-ca-cert-file", str(ca_cert), "--tls-auth-clients", "no",
         "--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the TLS redis-server did not start")
                time.sleep(0.05)
        yield port, ca_cert, other_ca
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _client(url: str) -> aioredis.Redis:
    """As the runtime builds it: from the one settings object's ESB_REDIS_URL."""
    settings = Settings(mode="development", redis_url=url)
    assert settings.redis_url is not None
    return aioredis.from_url(settings.redis_url.get_secret_value(), socket_timeout=3,
                             socket_connect_timeout=3)


async def test_stores_work_over_tls_with_the_ca(tls_redis: tuple[int, Path, Path]) -> None:
    port, ca, _ = tls_redis
    client = _client(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}")
    try:
        store = IdempotencyStore(RedisBackend(client), ttl_s=60)
        assert await store.claim("t1", "key-1", "fp") is None
        await store.complete("t1", "key-1", "fp", StoredResponse(201, {"ok": True}))
        assert await store.claim("t1", "key-1", "fp") == StoredResponse(201, {"ok": True})
        limiter = RedisRateLimiter(client, RateLimit(1.0, 1), prefix="tls:")
        assert (await limiter.acquire("ep")).allowed
        assert not (await limiter.acquire("ep")).allowed  # state shared through TLS Redis
        assert client.connection_pool.connection_class.__name__ == "SSLConnection"
    finally:
        await client.aclose()


@pytest.mark.parametrize("which", ["untrusted CA", "system CAs only", "plain redis://"])
async def test_an_untrusted_or_plain_connection_is_refused(tls_redis: tuple[int, Path, Path],
                                                           which: str) -> None:
    port, _, other_ca = tls_redis
    url = {"untrusted CA": f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={other_ca}",
           "system CAs only": f"rediss://127.0.0.1:{port}/0",
           "plain redis://": f"redis://127.0.0.1:{port}/0"}[which]
    client = _client(url)
    try:
        with pytest.raises(StorageUnavailable):
            await IdempotencyStore(RedisBackend(client), ttl_s=60).claim("t1", "k", "fp")
    finally:
        await client.aclose()
