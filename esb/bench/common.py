"""Benchmark plumbing: a broker, worker replicas as child processes, RSS sampling, percentiles.

Figures are only meaningful as ratios against a baseline measured in the same run on the same
broker, because these machines are noisy; every benchmark reports both.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from esb import ids
from esb.embedded import EmbeddedBroker, free_port, spawn_worker, stop_process


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def latency_summary_ms(values_s: list[float]) -> dict[str, float]:
    return {f"p{q}": round(percentile(values_s, q) * 1000, 3) for q in (50, 95, 99)} | {
        "samples": len(values_s)}


class RssSampler:
    """Samples a process's RSS in a thread: peak, and first/last for the flatness check."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.samples.append((time.monotonic(), self.proc.memory_info().rss))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def mark(self) -> int:
        return len(self.samples)

    def summary(self, since: int = 0) -> dict[str, float]:
        rss = [r for _, r in self.samples[since:]] or [0]
        return {"peak_rss_mb": round(max(rss) / 2**20, 1),
                "first_rss_mb": round(rss[0] / 2**20, 1),
                "last_rss_mb": round(rss[-1] / 2**20, 1)}


@dataclass
class BenchEnv:
    broker_url: str
    prefix: str
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return self.broker_url.removeprefix("kafka://")


@contextlib.contextmanager
def bench_env() -> Iterator[BenchEnv]:
    """A broker (ESB_BROKER, else an embedded one) and a unique topic prefix for this run."""
    broker = None
    url = os.environ.get("ESB_BROKER")
    if not url:
        broker = EmbeddedBroker().start()
        url = broker.url
    prefix = "bench" + ids.ulid()[-8:].lower()
    with tempfile.TemporaryDirectory(prefix="esb-bench-") as tmp:
        env = {"ESB_BROKER": url, "ESB_TOPIC_PREFIX": prefix, "ESB_APP_ID": prefix,
               "ESB_DATA_DIR": tmp, "ESB_GROUP_REBALANCE_TIMEOUT_MS": "3000",
               "ESB_DATABASE_SCHEMA": prefix, "ESB_MODE": "development"}
        if os.environ.get("ESB_DATABASE_URL"):
            env["ESB_DATABASE_URL"] = os.environ["ESB_DATABASE_URL"]
        try:
            yield BenchEnv(url, prefix, Path(tmp), env)
        finally:
            if broker is not None:
                broker.stop()


#: Each benchmark measures one stage; the archive projection (every routed event into PostgreSQL)
#: would otherwise share the worker process and the machine's two cores.
STAGE_ONLY_ENV = {"ESB_PROJECTION_ENABLED": "false"}


@contextlib.contextmanager
def worker(benv: BenchEnv, **extra_env: str) -> Iterator[tuple[Any, int]]:
    port = free_port()
    proc = spawn_worker({**benv.env, **STAGE_ONLY_ENV, **extra_env}, port,
                        benv.data_dir / f"worker-{port}.log")
    try:
        wait_healthy(port, proc)
        # to watch it (README "Monitoring"): no secret here, a token needs the data directory
        print(f"esb bench: worker http://127.0.0.1:{port} (ESB_DATA_DIR={benv.data_dir})",
              file=sys.stderr, flush=True)
        yield proc, port
    finally:
        stop_process(proc)


def wait_healthy(port: int, proc: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode} during start-up")
        with contextlib.suppress(Exception), urllib.request.urlopen(
                f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            if resp.status == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"worker on {port} not healthy after {timeout}s")


def token_for(benv: BenchEnv, tenant: str) -> str:
    from esb.auth import mint_token
    from esb.settings import Settings

    # the bench's workers run in development mode (bench_env); mint with the same dev key
    return mint_token(Settings(data_dir=benv.data_dir, mode="development"), tenant=tenant,
                      subject="bench")


async def http_json(session: Any, method: str, url: str, token: str, body: Any = None) -> Any:
    async with session.request(method, url, json=body,
                               headers={"Authorization": f"Bearer {token}"}) as resp:
        data = await resp.json(content_type=None)
        if resp.status >= 300:
            raise RuntimeError(f"{method} {url} -> {resp.status}: {data}")
        return data


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)
