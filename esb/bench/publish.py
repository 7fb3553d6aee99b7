"""``esb bench publish``: HTTP publishing (single and batch) against raw aiokafka produce of the
same events on the same broker in the same run; request latency percentiles and the worker's RSS."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp

from esb import ids
from esb.bench.common import (
    BenchEnv,
    RssSampler,
    bench_env,
    http_json,
    latency_summary_ms,
    run_async,
    token_for,
    worker,
)
from esb.bench.pipeline import PARTITIONS, ce_headers, create_topics, make_payload, producer
from esb.embedded import free_port, stop_process

TENANT = "bench"
STREAM = "orders"


def seed_event(i: int, pad: str) -> dict[str, Any]:
    return {"event_type": "order.created", "source_capability": "bench",
            "aggregate_id": f"ord_{i % 10000}", "payload": {"order_id": f"ord_{i}", "pad": pad}}


async def raw_produce(bootstrap: str, topic: str, n: int, payload: bytes) -> dict[str, Any]:
    await create_topics(bootstrap, [topic])
    prod = producer(bootstrap)
    await prod.start()
    try:
        started = time.perf_counter()
        futures = [await prod.send(topic, payload, key=f"ord_{i % 10000}".encode(),
                                   headers=ce_headers(i, ids.event_id())) for i in range(n)]
        await asyncio.gather(*futures)
        elapsed = time.perf_counter() - started
    finally:
        await prod.stop()
    return {"events": n, "seconds": round(elapsed, 3), "events_per_s": round(n / elapsed, 1)}


async def http_phase(base: str, token: str, *, total: int, concurrency: int, batch: int,
                     pad: str, path: str = "/api/v1/events") -> dict[str, Any]:
    """``concurrency`` clients post ``total`` events to ``base + path`` (``/batch`` when batching)."""
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    counter = iter(range(0, total, batch))
    errors = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        for start in counter:
            count = min(batch, total - start)
            if batch == 1:
                url, body = f"{base}{path}", seed_event(start, pad)
            else:
                url = f"{base}{path}/batch"
                body = {"events": [seed_event(start + j, pad) for j in range(count)]}
            t0 = time.perf_counter()
            async with session.post(url, json=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 201:
                    errors += count
            latencies.append(time.perf_counter() - t0)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"events": total, "events_per_request": batch, "concurrency": concurrency,
            "errors": errors, "seconds": round(elapsed, 3),
            "events_per_s": round(total / elapsed, 1),
            "request_latency_ms": latency_summary_ms(latencies)}


@contextlib.contextmanager
def bare_endpoint(benv: BenchEnv, topic: str) -> Iterator[str]:
    """The bare aiohttp + aiokafka endpoint in a child process; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "esb.bench.bare_endpoint", "--port", str(port),
         "--bootstrap", benv.bootstrap, "--topic", topic],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the bare publish endpoint did not start") from None
                time.sleep(0.2)
        yield base
    finally:
        stop_process(proc)


def bare_phases(benv: BenchEnv, args: Any, pad: str, single_total: int) -> dict[str, Any]:
    topic = f"{benv.prefix}.raw.http"
    run_async(create_topics(benv.bootstrap, [topic]))
    with bare_endpoint(benv, topic) as base:
        return {
            "single": run_async(http_phase(base, "", total=single_total,
                                           concurrency=args.concurrency, batch=1, pad=pad,
                                           path="/events")),
            "batch": run_async(http_phase(base, "", total=args.events,
                                          concurrency=max(1, args.concurrency // 8),
                                          batch=args.batch_size, pad=pad, path="/events")),
        }


def run_publish(args: Any) -> dict[str, Any]:
    payload = make_payload(args.payload_bytes)
    pad = "x" * max(0, args.payload_bytes - 60)
    single_total = min(args.events, 20_000)
    with bench_env() as benv, worker(benv) as (proc, port), RssSampler(proc.pid) as rss:
        base = f"http://127.0.0.1:{port}"
        token = token_for(benv, TENANT)

        async def create() -> None:
            async with aiohttp.ClientSession() as session:
                await http_json(session, "POST", f"{base}/api/v1/streams", token,
                                {"stream_name": STREAM, "source_capability": "bench",
                                 "partitions": PARTITIONS})

        run_async(create())
        baseline = run_async(raw_produce(benv.bootstrap, f"{benv.prefix}.raw.produce",
                                         args.events, payload))
        single = run_async(http_phase(base, token, total=single_total,
                                      concurrency=args.concurrency, batch=1, pad=pad))
        batched = run_async(http_phase(base, token, total=args.events,
                                       concurrency=max(1, args.concurrency // 8),
                                       batch=args.batch_size, pad=pad))
        memory = rss.summary()
        bare = bare_phases(benv, args, pad, single_total)
    return {
        "benchmark": "publish",
        "payload_bytes": len(payload),
        "baseline_raw_aiokafka_produce": baseline,
        "http_single": single,
        "http_batch": batched,
        "ratio_single": round(single["events_per_s"] / baseline["events_per_s"], 3),
        "ratio_batch": round(batched["events_per_s"] / baseline["events_per_s"], 3),
        # issue 15 goal 3: >= 0.7 of a bare aiohttp + aiokafka endpoint, same clients, same run
        "baseline_bare_http_endpoint": bare,
        "ratio_single_to_bare_http": round(single["events_per_s"]
                                           / bare["single"]["events_per_s"], 3),
        "ratio_batch_to_bare_http": round(batched["events_per_s"]
                                          / bare["batch"]["events_per_s"], 3),
        "worker_memory": memory,
    }
