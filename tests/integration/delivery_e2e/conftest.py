"""A controllable webhook receiver and a delivery-enabled worker for the end-to-end suite.

The receiver is a small aiohttp server on 127.0.0.1 that answers each path as the test says:
``ok``, ``down`` (503 without Retry-After; the test stops the server for a real outage),
``delay:<s>`` (answers slowly), ``slow`` (sleeps ``slow_s``), ``flaky`` (fails the first two
tries of every message), ``gone`` (410)
or ``throttle`` (429 with Retry-After). It records every request (headers, body, arrival time).
Workers get ``ESB_DELIVERY_ALLOW_CIDRS=127.0.0.0/8``: without it the SSRF guard refuses loopback.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from esb.embedded import free_port
from tests.support import Api, WorkerGroup, unique


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    behaviour: dict[str, str] = field(default_factory=dict)
    retry_after: str = "2"
    slow_s: float = 2.0
    received: list[Received] = field(default_factory=list)
    hits: list[tuple[str, float, int]] = field(default_factory=list)  # every request's answer
    _runner: web.AppRunner | None = None
    _flaky: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def ids(self, path: str) -> list[str]:
        return [r.headers["webhook-id"] for r in self.on(path)]

    async def _handle(self, request: web.Request) -> web.Response:
        response = await self._answer(request)
        self.hits.append((request.match_info["path"], time.time(), response.status))
        return response

    async def _answer(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        body = await request.read()
        mode = self.behaviour.get(path, "ok")
        if mode == "slow":
            await asyncio.sleep(self.slow_s)
        if mode == "flaky":  # the first two tries of every message fail (5xx, then a reset)
            seen = self._flaky[request.headers["webhook-id"]] = (
                self._flaky.get(request.headers["webhook-id"], 0) + 1)
            if seen == 1:
                return web.Response(status=500)
            if seen == 2:
                raise web.HTTPServiceUnavailable()
        if mode == "gone":
            return web.Response(status=410)
        if mode == "throttle":
            return web.Response(status=429, headers={"Retry-After": self.retry_after})
        if mode == "down":
            return web.Response(status=503)
        if mode.startswith("delay:"):
            await asyncio.sleep(float(mode.split(":", 1)[1]))
        self.received.append(Received(path, dict(request.headers), body, time.time()))
        return web.Response(status=204)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{path}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = await Receiver().start()
    try:
        yield rec
    finally:
        await rec.stop()


def delivery_env(redis_url: str) -> dict[str, str]:
    return {"ESB_DELIVERY_ALLOW_CIDRS": "127.0.0.0/8", "ESB_REDIS_URL": redis_url,
            "ESB_DELIVERY_RETRY_TIERS_S": "0.5,2,10",
            "ESB_DELIVERY_BREAKER_FAILURE_THRESHOLD": "1000"}


@pytest.fixture(scope="module")
def delivery_bus(broker_url: str, database_url: str, redis_url: str,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WorkerGroup, int]]:
    """One delivery-enabled worker shared by a module's tests (each uses its own tenant)."""
    group = WorkerGroup(broker_url, database_url,
                        Path(tempfile.mkdtemp(prefix="esb-delivery-e2e-")))
    port = group.start(**delivery_env(redis_url))
    try:
        yield group, port
    finally:
        group.stop_all()


@pytest.fixture
def dapi(delivery_bus: tuple[WorkerGroup, int], http: Any):  # type: ignore[no-untyped-def]
    group, port = delivery_bus

    def make(tenant: str) -> Api:
        return Api(http, group.url(port), group.token(tenant))

    return make


async def make_stream(api: Api, **extra: Any) -> str:
    name = unique("s")
    status, body = await api.post("/api/v1/streams", {"stream_name": name,
                                                      "source_capability": "orders",
                                                      "partitions": 3, **extra})
    assert status == 201, body
    return name


async def subscribe(api: Api, stream: str, url: str, **extra: Any) -> dict[str, Any]:
    body = {"subscription_name": unique("sub"), "stream_id": stream,
            "consumer_group_id": "notification_service", "webhook_url": url,
            "webhook_timeout_ms": 1000,
            "retry_policy": {"max_retries": 3, "retry_delay_ms": 200,
                             "exponential_backoff": True}, **extra}
    status, created = await api.post("/api/v1/subscriptions", body)
    assert status == 201, created
    return created  # type: ignore[no-any-return]


async def publish(api: Api, n: int, event_type: str = "order.created", *,
                  keys: int = 6, **extra: Any) -> list[str]:
    events = [{"event_type": event_type, "source_capability": "orders",
               "aggregate_id": f"agg-{i % keys}", "aggregate_type": "Order",
               "payload": {"n": i}, **extra} for i in range(n)]
    ids: list[str] = []
    for start in range(0, n, 200):
        batch = {"events": events[start:start + 200]}
        key = f"batch-{uuid.uuid4()}"
        for _attempt in range(3):
            # a 503 says "retry later" and acknowledged nothing; the SDK retries it the same way,
            # with the same Idempotency-Key (the embedded broker has been seen to leave a fresh
            # partition without a leader for the producer's whole request timeout)
            status, body = await api.post("/api/v1/events/batch", batch,
                                          headers={"Idempotency-Key": key})
            if status != 503:
                break
        assert status == 201, body
        ids += [e["event_id"] for e in body["events"]]
    return ids
