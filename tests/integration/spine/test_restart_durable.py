"""`esb up` (durable by default): every kind of state survives Ctrl-C and kill -9.

Real processes only: `esb up` runs as a subprocess on a temporary ESB_DATA_DIR with the embedded
durable broker (Tansu s3 engine on a loopback localbucket server); the database is this machine's
PostgreSQL on a unique schema (the embedded one when unreachable) to save start-up time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from esb.embedded import free_port, port_is_free
from tests.support import Api, eventually, unique

pytestmark = pytest.mark.integration

APPEND = "/api/v1/event-sourcing/append"
RECONSTRUCT = "/api/v1/event-sourcing/reconstruct"


@dataclass
class EsbUp:
    """One `esb up` process at a time on one data directory and one web port."""

    data_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=lambda: _free_pair())
    proc: subprocess.Popen[bytes] | None = None
    banner: dict[str, Any] = field(default_factory=dict)
    runs: int = 0

    def start(self, *extra: str, timeout: float = 90.0) -> dict[str, Any]:
        self.runs += 1
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        err = open(self.data_dir.parent / f"esb-up-{self.runs}.err", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "esb.cli", "up", "--port", str(self.port), *extra],
            env={**os.environ, **self.env}, stdout=subprocess.PIPE, stderr=err)
        err.close()
        assert self.proc.stdout is not None
        lines: list[bytes] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.rstrip() == b"}":
                self.banner = json.loads(b"".join(lines))
                return self.banner
        raise AssertionError(f"esb up printed no banner:\n{self.stderr()}")

    def stderr(self) -> str:
        path = self.data_dir.parent / f"esb-up-{self.runs}.err"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    @property
    def broker_port(self) -> int:
        return int(self.banner["broker"].split()[0].rsplit(":", 1)[1])

    def interrupt(self) -> None:
        """Ctrl-C."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.wait(60) == 0, self.stderr()

    def kill(self) -> None:
        """kill -9 of `esb up` alone: its children must notice and stop by themselves."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop_quietly(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _free_pair() -> int:
    """A port P with P+1 free too (``esb up --workers 2`` binds P and P+1)."""
    for _ in range(50):
        port = free_port()
        if port < 65535 and port_is_free(port + 1):
            return port
    raise AssertionError("no two consecutive free ports")


def _worker_pid(parent: int, port: int) -> int:
    for child in psutil.Process(parent).children():
        if f"--web-port {port}" in " ".join(child.cmdline()):
            return child.pid
    raise AssertionError(f"no worker on port {port} under esb up {parent}")


async def _healthy(http: aiohttp.ClientSession, port: int) -> tuple[bool, Any]:
    try:
        async with http.get(f"http://127.0.0.1:{port}/health") as resp:
            return resp.status == 200, resp.status
    except aiohttp.ClientError as exc:
        return False, repr(exc)


def _processes_using(data_dir: Path) -> list[str]:
    """Live processes whose command line names the data directory (broker store, workers
    inherit it through ESB_DATA_DIR, so check their environment too)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            env = proc.environ() if "faust" in cmd or "esb" in cmd else {}
        except psutil.Error:
            continue
        if str(data_dir) in cmd or env.get("ESB_DATA_DIR", "").startswith(str(data_dir)):
            found.append(f"{proc.info['pid']}: {cmd[:150]}")
    return found


@pytest.fixture
def esb_up(tmp_path: Path, database_url: str) -> Iterator[EsbUp]:
    data_dir = tmp_path / "data"
    up = EsbUp(data_dir, {
        "ESB_DATA_DIR": str(data_dir),
        "ESB_DATABASE_URL": database_url,
        "ESB_DATABASE_SCHEMA": unique("rs"),
        "ESB_GROUP_REBALANCE_TIMEOUT_MS": "2000",
        "ESB_GROUP_SESSION_TIMEOUT_MS": "6000",
        "ESB_GROUP_HEARTBEAT_INTERVAL_MS": "1000",
        "ESB_DEFAULT_PARTITIONS": "3",
    })
    up.env.pop("ESB_BROKER", None)
    os.environ.pop("ESB_BROKER", None)
    try:
        yield up
    finally:
        up.stop_quietly()


def _append(n: int, expected: object, event_id: str | None = None) -> dict[str, Any]:
    """An append to ``order_1``; with an event id a retry after a timeout is a duplicate (200),
    not a second event."""
    body = {"aggregate_id": "order_1", "aggregate_type": "Order", "event_type": "order.changed",
            "event_data": {"n": n}, "expected_version": expected}
    return {**body, "event_id": event_id} if event_id else body


async def _until(check: Any, what: str, timeout: float = 30.0) -> Any:
    """Poll ``check() -> (ok, detail)``; fail naming ``what`` and the last detail."""
    deadline = time.monotonic() + timeout
    while True:
        ok, detail = await check()
        if ok:
            return detail
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout}s; last: {detail!r}")
        await asyncio.sleep(0.25)


async def _everything_is_back(api: Api, stream: str, event_id: str) -> None:
    async def listed() -> tuple[bool, Any]:
        status, body = await api.get("/api/v1/streams")
        names = [s["stream_name"] for s in body["streams"]] if status == 200 else body
        return status == 200 and stream in names, (status, names)

    async def archived() -> tuple[bool, Any]:
        status, body = await api.get(f"/api/v1/events/{event_id}")
        return status == 200 and body["payload"] == {"n": 0}, (status, body)

    async def reconstructed() -> tuple[bool, Any]:
        status, body = await api.post(RECONSTRUCT, {"aggregate_id": "order_1",
                                                    "aggregate_type": "Order"})
        return status == 200 and body["current_version"] == 2, (status, body)

    await _until(listed, "stream listed")
    await _until(archived, "published event archived")
    await _until(reconstructed, "order_1 reconstructed at version 2")


async def test_streams_events_and_aggregates_survive_ctrl_c_and_kill_9(esb_up: EsbUp) -> None:
    banner = esb_up.start()
    assert banner["storage"].startswith("durable (s3 on "), banner
    assert banner["api"] == [f"http://127.0.0.1:{esb_up.port}/api/v1"]
    base = f"http://127.0.0.1:{esb_up.port}"
    tenant = banner["dev_token_tenant"]
    stream = unique("s")
    async with aiohttp.ClientSession() as http:
        api = Api(http, base, banner["dev_token"])
        async with http.get(base + "/health") as resp:  # anyone: the mode, not the path
            assert (await resp.json())["storage"] == "durable (s3)"
        status, body = await api.get("/health")  # an operator also sees where
        assert body["storage"] == banner["storage"], body
        status, body = await api.post("/api/v1/streams", {"stream_name": stream,
                                                          "source_capability": "shop"})
        assert status == 201, body
        status, body = await api.post("/api/v1/events", {
            "event_type": "order.placed", "source_capability": "shop", "aggregate_id": "order_1",
            "aggregate_type": "Order", "payload": {"n": 0}})
        assert status == 201, body
        event_id = body["event_id"]
        for n, expected in ((1, "no_stream"), (2, 1)):
            _, body = await eventually(
                lambda n=n, expected=expected, eid=f"evt_order1_{n}":
                    _created(api, _append(n, expected, eid)), timeout=60)
            assert body["version"] == n, body
        await _everything_is_back(api, stream, event_id)  # archived before the stop

    esb_up.interrupt()
    assert esb_up.start()["api"] == banner["api"], "esb up moved to another port"
    assert tenant == esb_up.banner["dev_token_tenant"]
    async with aiohttp.ClientSession() as http:
        await _everything_is_back(Api(http, base, esb_up.banner["dev_token"]), stream, event_id)

    broker_port = esb_up.broker_port
    esb_up.kill()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (
            _processes_using(esb_up.data_dir) or not port_is_free(esb_up.port)
            or not port_is_free(broker_port)):
        time.sleep(0.25)
    assert _processes_using(esb_up.data_dir) == [], "orphans outlived kill -9 of esb up"
    assert port_is_free(esb_up.port) and port_is_free(broker_port)

    esb_up.start("--workers", "2")
    async with aiohttp.ClientSession() as http:
        api = Api(http, base, esb_up.banner["dev_token"])
        await _everything_is_back(api, stream, event_id)
        # one replica dies: it is restarted (with backoff) while the other keeps serving
        assert esb_up.proc is not None
        os.kill(_worker_pid(esb_up.proc.pid, esb_up.port + 1), signal.SIGKILL)
        noticed = f"worker on port {esb_up.port + 1} exited with code -9; restarting"

        async def restarting() -> tuple[bool, Any]:
            return noticed in esb_up.stderr(), esb_up.stderr()

        await _until(restarting, "esb up noticing the dead replica", 10)
        assert (await _healthy(http, esb_up.port))[0], "the surviving replica stopped serving"
        await _until(lambda: _healthy(http, esb_up.port + 1), "killed replica back", 90)
        assert esb_up.proc.poll() is None, "esb up stopped when one worker died"
        await _everything_is_back(api, stream, event_id)
    esb_up.interrupt()


async def _created(api: Api, body: dict[str, Any]) -> tuple[int, Any] | None:
    """The append's answer once the owner took it (201, or 200 for a retried event id); None
    while the worker is not ready (5xx: starting, rebalancing, a timeout on a loaded machine)."""
    status, answer = await api.post(APPEND, body)
    if status in (200, 201):
        return status, answer
    assert status >= 500, (status, answer)
    return None


async def test_local_state_ahead_of_the_broker_is_rebuilt_not_a_crash(
        database_url: str, tmp_path: Path) -> None:
    """The broker lost the changelogs (a memory broker restarted) but RocksDB kept the tables:
    the worker discards its local copy, says so, and agrees with the broker."""
    from esb.embedded import EmbeddedBroker
    from tests.support import WorkerGroup

    first = EmbeddedBroker(log_path=tmp_path / "broker-1.log").start()
    group = WorkerGroup(first.url, database_url, tmp_path)
    tenant = unique()
    try:
        port = group.start()
        async with aiohttp.ClientSession() as http:
            api = Api(http, group.url(port), group.token(tenant))
            for n, expected in ((1, "no_stream"), (2, 1)):
                await eventually(lambda n=n, expected=expected, eid=f"evt_order1_{n}":
                                 _created(api, _append(n, expected, eid)), timeout=60)
        group.stop(port)
    finally:
        group.stop_all()
        first.stop()

    second = EmbeddedBroker(log_path=tmp_path / "broker-2.log").start()
    group.broker_url = second.url
    try:
        # same port, same RocksDB directory (worker-<port>); raises with the log if it crashed
        port = group.start(port)
        assert "discarding the local copy and rebuilding it from the changelog" in group.log(port)
        async with aiohttp.ClientSession() as http:
            api = Api(http, group.url(port), group.token(tenant))
            async def answered() -> tuple[bool, Any]:
                status, body = await api.post(RECONSTRUCT, {"aggregate_id": "order_1",
                                                            "aggregate_type": "Order"})
                return status < 500, (status, body)

            status, body = await _until(answered, "a reconstruct answer")
            assert status == 404, body  # the broker never saw order_1: no stale state served
            _, body = await eventually(lambda: _created(api, _append(1, "no_stream", "evt_x1")))
            assert body["version"] == 1
    finally:
        group.stop_all()
        second.stop()


async def test_every_kind_of_state_survives_a_restart(esb_up: EsbUp) -> None:
    """Issue 11 §4 on the durable default: what the bus was told before Ctrl-C (stream, schema,
    subscription, processor, pattern, read model, dead letter, archived event) is there after
    the next start, and the subscription resumes from its committed offset: the event it
    delivered before the stop is not delivered again, the one published after it arrives."""
    from tests.integration.delivery_e2e.conftest import Receiver

    esb_up.env["ESB_DELIVERY_ALLOW_CIDRS"] = "127.0.0.0/8"
    receiver = await Receiver(behaviour={"gone": "gone"}).start()
    try:
        banner = esb_up.start()
        base = f"http://127.0.0.1:{esb_up.port}"
        async with aiohttp.ClientSession() as http:
            api = Api(http, base, banner["dev_token"])
            ids = await _tell_the_bus_everything(api, receiver)
        esb_up.interrupt()

        esb_up.start()
        async with aiohttp.ClientSession() as http:
            api = Api(http, base, esb_up.banner["dev_token"])
            await _all_of_it_is_back(api, ids)
            status, body = await api.post("/api/v1/events", _order("after", 2))
            assert status == 201, body

            async def after_arrived() -> tuple[bool, Any]:
                return body["event_id"] in receiver.ids("ok"), receiver.ids("ok")

            await _until(after_arrived, "the event published after the restart delivered", 60)
            assert receiver.ids("ok").count(ids["delivered"]) == 1, receiver.ids("ok")
        esb_up.interrupt()
    finally:
        await receiver.stop()


def _order(source: str, n: int) -> dict[str, Any]:
    return {"event_type": "order.placed", "source_capability": "shop", "stream_name": "orders",
            "aggregate_id": f"o{n}", "payload": {"order_id": f"o{n}", "amount": 50 * n,
                                                 "from": source}}


async def _tell_the_bus_everything(api: Api, receiver: Any) -> dict[str, str]:
    ids: dict[str, str] = {}
    for name in ("orders", "big_orders"):
        status, body = await api.post("/api/v1/streams", {"stream_name": name,
                                                          "source_capability": "shop"})
        assert status == 201, body
        ids[name] = body["stream"]["stream_id"]
    status, body = await api.post("/api/v1/schemas", {
        "schema_name": "order_placed", "event_type": "order.placed", "json_schema": {
            "type": "object", "required": ["order_id"],
            "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}}}})
    assert status == 201, body
    ids["schema"] = body["schema_id"]
    for path in ("ok", "gone"):
        status, body = await api.post("/api/v1/subscriptions", {
            "subscription_name": f"to_{path}", "stream_id": "orders",
            "consumer_group_id": f"g_{path}", "webhook_url": receiver.url(path),
            "retry_policy": {"max_retries": 0, "retry_delay_ms": 100}})
        assert status == 201, body
        ids[f"sub_{path}"] = body["subscription_id"]
    status, body = await api.post("/api/v1/stream-processors", {
        "processor_name": "big", "processor_type": "FILTER", "source_stream_id": "orders",
        "target_stream_id": "big_orders",
        "processing_logic": {"filter_expression": "payload.amount > 10"}})
    assert status == 201, body
    ids["processor"] = body["processor_id"]
    status, body = await api.post("/api/v1/patterns", {
        "pattern_name": "twice", "source_stream_id": "orders", "kind": "sequence",
        "event_types": ["order.placed", "order.placed"], "within_ms": 60_000})
    assert status == 201, body
    ids["pattern"] = body["pattern_id"]
    status, body = await api.post("/api/v1/read-models", {
        "name": "orders_by_id", "event_types": ["order.*"],
        "fields": {"amount": "payload.amount"}})
    assert status == 201, body
    status, body = await api.post("/api/v1/events", _order("before", 1))
    assert status == 201, body
    ids["delivered"] = body["event_id"]

    async def delivered_and_dead_lettered() -> tuple[bool, Any]:
        _, letters = await api.get("/api/v1/dead-letters?stage=delivery")
        dead = [d for d in letters.get("dead_letters", []) if d.get("event_id") == ids["delivered"]]
        return bool(dead) and ids["delivered"] in receiver.ids("ok"), (letters, receiver.ids("ok"))

    await _until(delivered_and_dead_lettered, "delivery to /ok and a dead letter from /gone", 60)
    return ids


async def _all_of_it_is_back(api: Api, ids: dict[str, str]) -> None:
    async def back() -> tuple[bool, Any]:
        found = {
            "streams": await api.get("/api/v1/streams"),
            "schema": await api.get(f"/api/v1/schemas/{ids['schema']}"),
            "sub_ok": await api.get(f"/api/v1/subscriptions/{ids['sub_ok']}"),
            "processor": await api.get(f"/api/v1/stream-processors/{ids['processor']}"),
            "pattern": await api.get(f"/api/v1/patterns/{ids['pattern']}"),
            "document": await api.get("/api/v1/read-models/orders_by_id/documents"),
            "letters": await api.get("/api/v1/dead-letters?stage=delivery"),
            "event": await api.get(f"/api/v1/events/{ids['delivered']}"),
        }
        ok = all(status == 200 for status, _ in found.values())
        if ok:
            names = {s["stream_name"] for s in found["streams"][1]["streams"]}
            ok = ({"orders", "big_orders"} <= names
                  and found["document"][1].get("total", len(found["document"][1].get(
                      "documents", []))) >= 1
                  and any(d.get("event_id") == ids["delivered"]
                          for d in found["letters"][1].get("dead_letters", [])))
        return ok, found

    await _until(back, "every kind of state back after the restart", 60)
