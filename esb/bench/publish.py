"""``esb bench publish``: HTTP publishing (single and batch) against raw aiokafka produce of the
same events on the same broker in the same run; request latency percentiles and the worker's RSS."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from esb import ids
from esb.bench.common import (
    RssSampler,
    bench_env,
    http_json,
    latency_summary_ms,
    run_async,
    token_for,
    worker,
)
from esb.bench.pipeline import PARTITIONS, ce_headers, create_topics, make_payload, producer

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
                     pad: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    counter = iter(range(0, total, batch))
    errors = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        for start in counter:
            count = min(batch, total - start)
            if batch == 1:
                url, body = f"{base}/api/v1/events", seed_event(start, pad)
            else:
                url = f"{base}/api/v1/events/batch"
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
    return {
        "benchmark": "publish",
        "payload_bytes": len(payload),
        "baseline_raw_aiokafka_produce": baseline,
        "http_single": single,
        "http_batch": batched,
        "ratio_single": round(single["events_per_s"] / baseline["events_per_s"], 3),
        "ratio_batch": round(batched["events_per_s"] / baseline["events_per_s"], 3),
        "worker_memory": memory,
    }
