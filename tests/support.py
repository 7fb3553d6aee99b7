"""Test support: real services (embedded broker, PostgreSQL, Redis) and worker replicas.

Workers run as real child processes (``python -m faust -A esb.app worker``), so integration tests
exercise exactly what operators deploy. Every worker group gets its own topic prefix, app id and
database schema, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from esb import ids
from esb.auth import mint_token
from esb.embedded import free_port, spawn_worker, stop_process
from esb.kafka import topic_partitions
from esb.settings import Settings


def unique(prefix: str = "t") -> str:
    """A short unique lowercase name usable as tenant, stream or topic prefix."""
    return prefix + ids.ulid()[-10:].lower()


@dataclass
class WorkerGroup:
    """Worker replicas sharing one prefix/app id/schema: one logical bus."""

    broker_url: str
    database_url: str
    tmp: Path
    prefix: str = field(default_factory=lambda: unique("esb"))
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            "ESB_BROKER": self.broker_url,
            "ESB_DATABASE_URL": self.database_url,
            "ESB_DATABASE_SCHEMA": self.prefix,
            "ESB_TOPIC_PREFIX": self.prefix,
            "ESB_APP_ID": self.prefix,
            "ESB_DATA_DIR": str(self.tmp / self.prefix),
            "ESB_GROUP_REBALANCE_TIMEOUT_MS": "2000",
            "ESB_GROUP_SESSION_TIMEOUT_MS": "6000",
            "ESB_GROUP_HEARTBEAT_INTERVAL_MS": "1000",  # rebalances noticed within 1 s
            "ESB_DEFAULT_PARTITIONS": "3",
            **self.extra_env,
        }

    @property
    def settings(self) -> Settings:
        return Settings(data_dir=self.tmp / self.prefix, topic_prefix=self.prefix)

    def token(self, tenant: str, *, roles: list[str] | None = None, subject: str = "tester",
              scopes: list[str] | None = None) -> str:
        """Roles default to admin of ``tenant`` (mint_token); ``roles=[]`` may do nothing."""
        return mint_token(self.settings, tenant=tenant, subject=subject, roles=roles,
                          scopes=scopes)

    def start(self, port: int | None = None, **env: str) -> int:
        port = port or free_port()
        log = self.tmp / self.prefix / f"worker-{port}.log"
        proc = spawn_worker({**self.env, **env}, port, log)
        self.procs[port] = proc
        wait_healthy(port, proc, log)
        return port

    def kill(self, port: int) -> None:
        """SIGKILL: the crash case (no graceful shutdown, nothing flushed)."""
        proc = self.procs.pop(port)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop(self, port: int) -> None:
        stop_process(self.procs.pop(port))

    def stop_all(self) -> None:
        for port in list(self.procs):
            self.stop(port)

    def url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}"

    def log(self, port: int) -> str:
        path = self.tmp / self.prefix / f"worker-{port}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def wait_healthy(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
            raise RuntimeError(f"worker exited with {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200 and _routers_assigned(json.loads(r.read())):
                    return
        except Exception:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"worker on {port} not healthy within {timeout}s")


def _routers_assigned(health: dict[str, Any]) -> bool:
    return health.get("status") == "ok"


class Api:
    """A tiny JSON client bound to one worker and one bearer token."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str | None) -> None:
        self.session = session
        self.base = base
        self.token = token

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        out = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**out, **(extra or {})}

    async def request(self, method: str, path: str, *, json_body: Any = None,
                      data: bytes | None = None, headers: dict[str, str] | None = None
                      ) -> tuple[int, Any]:
        async with self.session.request(method, self.base + path, json=json_body, data=data,
                                        headers=self.headers(headers)) as resp:
            text = await resp.text()
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = text
            return resp.status, body

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.request("POST", path, json_body=body, **kw)


async def consume_all(bootstrap: str, topics: Iterable[str], *, expect: int,
                      timeout: float = 30.0) -> list[Any]:
    """Read topics from the beginning (no group) until ``expect`` records or the timeout."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_max_wait_ms=50)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topics)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(records) < expect and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for recs in batches.values():
                records.extend(recs)
        return records
    finally:
        await consumer.stop()


async def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes | None,
                                                                     list[tuple[str, bytes]]]]
                  ) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key, headers=headers)
                   for key, value, headers in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def ce_headers(tenant: str, event_type: str = "user.created", *, event_id: str | None = None,
               source: str = "user_management", **extensions: str) -> list[tuple[str, bytes]]:
    headers = [("ce_specversion", b"1.0"), ("ce_id", (event_id or ids.event_id()).encode()),
               ("ce_source", source.encode()), ("ce_type", event_type.encode()),
               ("ce_tenantid", tenant.encode()), ("content-type", b"application/json")]
    headers.extend((f"ce_{k}", v.encode()) for k, v in extensions.items())
    return headers


def header(record: Any, name: str) -> str | None:
    for key, value in record.headers:
        if key == name:
            return value.decode()
    return None


async def eventually(check: Any, *, timeout: float = 20.0, interval: float = 0.2) -> Any:
    """Await ``check()`` until it returns a truthy value; fail with its last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


def env_or(name: str, default: str) -> str:
    return os.environ.get(name) or default


async def wait_router_assigned(session: aiohttp.ClientSession, base: str, minimum: int,
                               operator_token: str, timeout: float = 60.0) -> None:
    """Wait until this worker's ingress router owns at least ``minimum`` partitions (the
    detailed health checks are for operators)."""

    async def check() -> bool:
        async with session.get(base + "/health",
                               headers={"Authorization": f"Bearer {operator_token}"}) as resp:
            body = await resp.json()
        return body["checks"]["partitions"]["ingress_assigned"] >= minimum

    await eventually(check, timeout=timeout)


async def committed_total(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        return sum([(await consumer.committed(TopicPartition(topic, p))) or 0
                    for p in range(partitions)])
    finally:
        await consumer.stop()
