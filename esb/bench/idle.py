"""``esb bench idle``: what an idle ``esb up`` costs, and what a quiet bus costs the next event.

Starts the bus exactly as a user does (``esb up --ephemeral``: embedded Tansu in memory mode,
embedded PostgreSQL, one worker; with ``ESB_BENCH_IDLE_DURABLE=1``, ``esb up --durable``) in a
fresh data directory, creates one stream, lets it settle, then measures CPU (percent of one
core) per process over a window with no traffic: broker (and its object store when durable),
worker, PostgreSQL (postmaster and backends), and the ``esb up`` supervisor and watchdog. It also
reads the worker's Fetch-request counter (``esb_consumer_fetches_total``) over the same window,
so the long polls reaching the broker are visible next to the CPU they cost.

Then the price of the adaptive fetch wait (ADR 0021): after the quiet window, a WebSocket live
tail is opened and one event published over HTTP; the time until the tail shows it and until the
archive returns it (``GET /api/v1/events/{id}``) is the *first-event latency after idle*. A few
events published right after give the warm figure, and a few more, each after 12 s of quiet
(a tenant that publishes now and then), the *sparse* figure: median and worst.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from esb.embedded import free_port, stop_process

TENANT = "bench"
STREAM = "idle"
SETTLE_S = 10.0
WINDOW_S = 30.0
WARM_EVENTS = 5
#: quiet spells before the sparse events: long enough for every wait to reach its maximum
SPARSE_GAP_S = 12.0
SPARSE_EVENTS = 4


@dataclass
class UpStack:
    proc: subprocess.Popen[bytes]
    port: int
    token: str
    state_dir: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def esb_up(extra_env: dict[str, str], timeout: float = 150.0, *, durable: bool = False
           ) -> Iterator[UpStack]:
    """``esb up --ephemeral`` (``durable``: ``esb up --durable``, Tansu on its loopback object
    store) in a fresh data directory; an external ``ESB_BROKER`` or ``ESB_DATABASE_URL`` is
    dropped so the whole embedded tree is what gets measured."""
    with tempfile.TemporaryDirectory(prefix="esb-bench-idle-") as tmp:
        env = {k: v for k, v in os.environ.items()
               if k not in ("ESB_BROKER", "ESB_DATABASE_URL", "ESB_WEB_PORT")}
        env.update({"ESB_DATA_DIR": tmp, "ESB_MODE": "development", **extra_env})
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "esb.cli", "up", "--durable" if durable else "--ephemeral",
             "--port", str(port), "--tenant", TENANT, "--startup-timeout", str(timeout)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            banner = _read_banner(proc, timeout)
            yield UpStack(proc, port, banner["dev_token"], Path(banner["data_dir"]))
        finally:
            stop_process(proc, timeout=90.0)  # esb up stops workers, broker and PostgreSQL


def _read_banner(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """The JSON document ``esb up`` prints once every worker is healthy."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            raise RuntimeError(f"esb up exited with {proc.wait()} before it was running")
        lines.append(line)
        if line.rstrip() == "}":
            return json.loads("".join(lines))  # type: ignore[no-any-return]
    raise RuntimeError(f"esb up not running after {timeout}s")


def processes(stack: UpStack) -> dict[str, list[psutil.Process]]:
    """The stack's processes by role: broker, worker, postgres, supervisor (esb up and its
    watchdog)."""
    up = psutil.Process(stack.proc.pid)
    roles: dict[str, list[psutil.Process]] = {"broker": [], "worker": [], "postgres": [],
                                              "supervisor": [up]}
    for child in up.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmd = " ".join(child.cmdline())
            if "faust" in cmd:
                roles["worker"].append(child)
            elif "--listener-url" in cmd or "objectstore" in cmd:
                roles["broker"].append(child)  # durable mode: Tansu and its object store
            else:
                roles["supervisor"].append(child)
    pid_file = stack.state_dir / "postgres" / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, psutil.Error):
        postmaster = psutil.Process(int(pid_file.read_text().split("\n", 1)[0]))
        roles["postgres"] = [postmaster, *postmaster.children(recursive=True)]
    return roles


def _cpu_s(procs: list[psutil.Process]) -> dict[int, float]:
    out: dict[int, float] = {}
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
    return out


def measure_cpu(stack: UpStack, window_s: float) -> dict[str, Any]:
    """CPU percent of one core per role over ``window_s`` of wall time (processes present at
    both ends; a PostgreSQL backend that came and went inside the window is missed)."""
    before_roles = processes(stack)
    before = {role: _cpu_s(procs) for role, procs in before_roles.items()}
    fetches_before = worker_fetches(stack)
    started = time.monotonic()
    time.sleep(window_s)
    elapsed = time.monotonic() - started
    after = {role: _cpu_s(procs) for role, procs in processes(stack).items()}
    fetches_after = worker_fetches(stack)
    per_role = {}
    for role, now in after.items():
        used = sum(cpu - before[role].get(pid, cpu) for pid, cpu in now.items()
                   if pid in before[role])
        per_role[role] = round(100 * used / elapsed, 2)
    worker = before_roles["worker"][0] if before_roles["worker"] else None
    rss_mb = round(worker.memory_info().rss / 2**20, 1) if worker else None
    fetch_rate = {k: round((fetches_after.get(k, 0) - v) / elapsed, 1)
                  for k, v in fetches_before.items()}
    return {"window_s": round(elapsed, 1), "idle_cpu_percent": round(sum(per_role.values()), 2),
            "per_process_cpu_percent": per_role, "worker_rss_mb": rss_mb,
            "worker_fetch_requests_per_s": fetch_rate,
            "processes": {role: len(procs) for role, procs in before_roles.items()}}


def worker_fetches(stack: UpStack) -> dict[str, float]:
    """The worker's ``esb_consumer_fetches_total`` by result (``records``, ``empty``) and
    ``all``; empty when the worker has no such counter (a tree without ADR 0021)."""
    try:
        with urllib.request.urlopen(f"{stack.base}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("esb_consumer_fetches_total{"):
            result = line.split('result="', 1)[1].split('"', 1)[0]
            out[result] = out.get(result, 0.0) + float(line.rsplit(" ", 1)[1])
    if out:
        out["all"] = sum(out.values())
    return out


def adaptive_consumers(stack: UpStack) -> float | None:
    """How many of the worker's consumers have the adaptive fetch wait."""
    with contextlib.suppress(OSError), urllib.request.urlopen(f"{stack.base}/metrics",
                                                              timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("esb_consumer_fetch_wait_consumers "):
                return float(line.rsplit(" ", 1)[1])
    return None


async def create_stream(stack: UpStack) -> None:
    headers = {"Authorization": f"Bearer {stack.token}"}
    async with aiohttp.ClientSession(headers=headers) as session, session.post(
            f"{stack.base}/api/v1/streams",
            json={"stream_name": STREAM, "source_capability": "bench"}) as resp:
        if resp.status >= 300:
            raise RuntimeError(f"create stream -> {resp.status}: {await resp.text()}")


async def first_event_latency(stack: UpStack) -> dict[str, Any]:
    """Open a live tail, publish one event, time the tail and the archive; then a few warm."""
    headers = {"Authorization": f"Bearer {stack.token}"}
    ws_url = f"ws://127.0.0.1:{stack.port}/ws/events/{STREAM}"
    async with aiohttp.ClientSession(headers=headers) as session, session.ws_connect(
            ws_url) as ws:
        await ws.receive_json(timeout=30)  # hello: the tail's positions are resolved

        async def one(i: int) -> dict[str, float]:
            started = time.perf_counter()
            async with session.post(f"{stack.base}/api/v1/events", json={
                    "stream_name": STREAM, "event_type": "idle.probe",
                    "source_capability": "bench", "payload": {"i": i}}) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 201:
                    raise RuntimeError(f"publish -> {resp.status}: {body}")
            acked = time.perf_counter() - started
            event_id = body["event_id"]

            async def tail() -> float:
                while True:
                    msg = await ws.receive_json(timeout=30)
                    if json.dumps(msg).find(event_id) >= 0:
                        return time.perf_counter() - started

            async def archive() -> float:
                while True:
                    async with session.get(f"{stack.base}/api/v1/events/{event_id}") as r:
                        await r.read()
                        if r.status == 200:
                            return time.perf_counter() - started
                    await asyncio.sleep(0.005)

            live, archived = await asyncio.wait_for(asyncio.gather(tail(), archive()), 30)
            return {"publish_ack_ms": round(acked * 1000, 1),
                    "live_tail_ms": round(live * 1000, 1),
                    "archive_ms": round(archived * 1000, 1)}

        first = await one(0)
        warm = []
        for i in range(WARM_EVENTS):
            await asyncio.sleep(0.2)
            warm.append(await one(i + 1))
        sparse = []
        for i in range(SPARSE_EVENTS):
            await asyncio.sleep(SPARSE_GAP_S)
            sparse.append(await one(100 + i))
    warm_median = {k: sorted(w[k] for w in warm)[len(warm) // 2] for k in first}
    sparse_summary = {k: {"median": sorted(e[k] for e in sparse)[len(sparse) // 2],
                          "max": max(e[k] for e in sparse)} for k in first}
    return {"first_after_idle": first, "warm_median": warm_median, "warm_events": len(warm),
            "sparse_after_quiet_s": SPARSE_GAP_S, "sparse_events": len(sparse),
            "sparse": sparse_summary}


def run_idle(args: Any) -> dict[str, Any]:
    # the fetch-wait bounds come from the caller's environment, e.g. the fixed-wait baseline:
    # ESB_FETCH_IDLE_MAX_WAIT_MS=20 esb bench idle
    tuning = {k: v for k, v in os.environ.items() if k.startswith("ESB_FETCH_")}
    durable = os.environ.get("ESB_BENCH_IDLE_DURABLE", "").lower() in ("1", "true", "yes")
    mode = ("--durable (Tansu on its object store; ESB_BENCH_IDLE_DURABLE=1)" if durable
            else "--ephemeral (Tansu in memory)")
    with esb_up({}, durable=durable) as stack:
        asyncio.run(create_stream(stack))
        time.sleep(SETTLE_S)
        cpu = measure_cpu(stack, WINDOW_S)
        quiet_s = SETTLE_S + cpu["window_s"]
        latency = asyncio.run(first_event_latency(stack))
        consumers = adaptive_consumers(stack)
    return {
        "benchmark": "idle",
        "how": f"esb up {mode} + embedded PostgreSQL, 1 worker, one stream, no traffic; "
               "CPU as percent of one core",
        "settings": tuning,
        **cpu,
        "fetch_loops": consumers,
        # issue 15 goal 1: under 5% of one core for broker + worker + PostgreSQL
        "goal_idle_cpu_percent": 5.0,
        "latency_after_quiet_s": round(quiet_s, 1),
        **latency,
    }
