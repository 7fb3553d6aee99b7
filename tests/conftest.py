"""Session fixtures: one embedded broker, the machine's PostgreSQL and Redis, worker replicas.

A missing service is a clear skip (with the reason), never a hang: PostgreSQL and Redis are probed
with short timeouts. PostgreSQL falls back to the embedded server (pgserver) when the machine has none.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from esb.embedded import EmbeddedBroker
from tests.support import Api, WorkerGroup, env_or

# the suite runs the bus in development mode (dev keys, no issuer/audience); tests of production
# mode set ESB_MODE themselves
os.environ.setdefault("ESB_MODE", "development")

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


def _reachable(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, every finished span kept in memory (a test of what the bus traces)."""
    from esb.observability import tracing

    exporter = InMemorySpanExporter()
    tracing.configure(service_instance="test", exporters=[exporter], environ={})
    try:
        yield exporter
    finally:
        tracing.shutdown()


@pytest.fixture(scope="session")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The embedded Kafka-compatible broker (Tansu), started once; or ESB_TEST_BROKER."""
    if os.environ.get("ESB_TEST_BROKER"):
        yield os.environ["ESB_TEST_BROKER"]
        return
    broker = EmbeddedBroker(log_path=tmp_path_factory.mktemp("broker") / "broker.log").start()
    try:
        yield broker.url
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def bootstrap(broker_url: str) -> str:
    return broker_url.removeprefix("kafka://")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """This machine's PostgreSQL; else the embedded one; else skip, saying why."""
    url = env_or("ESB_TEST_DATABASE_URL", DEFAULT_DATABASE_URL)
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
        return url
    except psycopg.Error as exc:
        reason = f"PostgreSQL at {url} unreachable ({exc.__class__.__name__})"
    try:
        from esb.db import start_embedded_postgres

        return start_embedded_postgres(tmp_path_factory.mktemp("pg"))
    except Exception as exc:
        pytest.skip(f"{reason}; embedded PostgreSQL failed too: {exc}")


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = env_or("ESB_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    host_port = url.split("//", 1)[1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    if not _reachable(host or "127.0.0.1", int(port or 6379)):
        pytest.skip(f"Redis at {url} unreachable")
    return url


def _running_worker(broker_url: str, database_url: str, tmp: Path
                    ) -> Iterator[tuple[WorkerGroup, int]]:
    group = WorkerGroup(broker_url, database_url, tmp)
    port = group.start()
    try:
        yield group, port
    finally:
        group.stop_all()


@pytest.fixture(scope="session")
def bus(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[WorkerGroup, int]]:
    """One shared worker for API tests; tests isolate themselves with unique tenants/streams."""
    yield from _running_worker(broker_url, database_url, tmp_path_factory.mktemp("bus"))


@pytest.fixture(scope="module")
def fresh_bus(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[WorkerGroup, int]]:
    """A worker of the module's own (own prefix): for modules that wait on the archive
    projection, which on the shared ``bus`` follows every topic every earlier test created
    and rebalances whenever one appears (hundreds of times in a full run)."""
    yield from _running_worker(broker_url, database_url, tmp_path_factory.mktemp("fresh"))


@pytest.fixture
def worker_group(broker_url: str, database_url: str, tmp_path: Path) -> Iterator[WorkerGroup]:
    """A fresh bus (own prefix, app id, schema) for tests that start, kill or restart workers."""
    group = WorkerGroup(broker_url, database_url, tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def api_for(bus: tuple[WorkerGroup, int], http: aiohttp.ClientSession):  # type: ignore[no-untyped-def]
    """``api_for(tenant)`` -> an Api client on the shared worker with that tenant's token."""
    group, port = bus

    def make(tenant: str, roles: list[str] | None = None) -> Api:
        return Api(http, group.url(port), group.token(tenant, roles=roles))

    return make
