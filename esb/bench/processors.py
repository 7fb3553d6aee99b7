"""``esb bench processors``: events/s through a FILTER, an AGGREGATE (tumbling sum by group) and
a sequence pattern, each reading the same preloaded stream in one worker, against raw aiokafka
consume→produce passthrough on the same broker in the same run.

A job's rate is taken from its own metrics (``events_processed``), from its first progress to
the last event, so the consumer-group join before the first poll is not counted.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer

from esb import ids
from esb.bench.common import BenchEnv, RssSampler, bench_env, http_json, run_async, token_for, worker
from esb.bench.pipeline import raw_passthrough
from esb.processing.fields import from_epoch_ms

TENANT = "bench"
PARTITIONS = 6
SEQUENCE = ("order.placed", "order.paid", "order.shipped")


def record(i: int, base_ms: int, pad: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """Orders in time order; every order goes placed → paid → shipped (a sequence match)."""
    order = i // 3
    headers = [("ce_specversion", b"1.0"), ("ce_id", ids.event_id().encode()),
               ("ce_source", b"bench"), ("ce_type", SEQUENCE[i % 3].encode()),
               ("ce_time", from_epoch_ms(base_ms + i).encode()),
               ("ce_tenantid", TENANT.encode()),
               ("ce_correlationid", f"ord_{order}".encode()),
               ("content-type", b"application/json")]
    payload = {"order_id": f"ord_{order}", "region": ("eu", "us", "apac")[order % 3],
               "amount": order % 50, "pad": pad}
    return f"ord_{order}".encode(), json.dumps(payload).encode(), headers


async def preload(bootstrap: str, topic: str, n: int, payload_bytes: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_batch_size=1 << 20)
    await producer.start()
    pad = "x" * max(0, payload_bytes - 80)
    base = int(time.time() * 1000) - n
    try:
        futures = []
        for i in range(n):
            key, value, headers = record(i, base, pad)
            futures.append(await producer.send(topic, value, key=key, headers=headers))
            if len(futures) >= 20_000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def measure(session: aiohttp.ClientSession, url: str, token: str, n: int,
                  read_count: Any, timeout: float = 600.0) -> dict[str, Any]:
    first: tuple[float, int] | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = read_count(await http_json(session, "GET", url, token))
        now = time.perf_counter()
        if done and first is None:
            first = (now, done)
        if done >= n:
            assert first is not None
            counted, elapsed = n - first[1], now - first[0]
            if counted <= 0 or elapsed <= 0:
                raise RuntimeError("the job finished before its first metrics read: raise "
                                   "--events")
            return {"events": n, "seconds": round(elapsed, 3),
                    "events_per_s": round(counted / elapsed, 1)}
        await asyncio.sleep(0.25)
    raise RuntimeError(f"job did not process {n} events within {timeout}s")


async def run_jobs(benv: BenchEnv, port: int, n: int, payload_bytes: int) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}/api/v1"
    token = token_for(benv, TENANT)
    async with aiohttp.ClientSession() as session:
        async def post(path: str, body: Any = None) -> Any:
            return await http_json(session, "POST", base + path, token, body)

        streams = {}
        for name in ("orders", "filtered", "sales"):
            created = await post("/streams", {"stream_name": name, "partitions": PARTITIONS,
                                              "source_capability": "bench"})
            streams[name] = created["stream"]
        await preload(benv.bootstrap, streams["orders"]["topics"]["NORMAL"], n, payload_bytes)
        processed = lambda body: body["events_processed"] + body["error_count"]  # noqa: E731
        results: dict[str, Any] = {}
        jobs = {
            "filter": {"processor_name": "bench_filter", "processor_type": "FILTER",
                       "source_stream_id": "orders", "target_stream_id": "filtered",
                       "processing_logic": {"filter_expression": "payload.amount > 10"},
                       "parallelism": PARTITIONS, "error_handling_strategy": "SKIP"},
            "aggregate": {"processor_name": "bench_sales", "processor_type": "AGGREGATE",
                          "source_stream_id": "orders", "target_stream_id": "sales",
                          "processing_logic": {"aggregation_function": "sum",
                                               "aggregation_field": "amount",
                                               "group_by": ["region"]},
                          "window_config": {"window_type": "tumbling", "window_size_ms": 1000},
                          "parallelism": PARTITIONS, "error_handling_strategy": "SKIP"},
        }
        for label, body in jobs.items():
            created = await post("/stream-processors", body)
            pid = created["processor_id"]
            await post(f"/stream-processors/{pid}/start")
            results[label] = await measure(session, f"{base}/stream-processors/{pid}/metrics",
                                           token, n, processed)
            await post(f"/stream-processors/{pid}/stop")
        # The orders stream is keyed by order id, the sequence's correlation key: the same
        # pattern once through the re-key stage (the default) and once without it.
        for label, co_partitioned in (("sequence_pattern", False),
                                      ("sequence_pattern_co_partitioned", True)):
            created = await post("/patterns", {
                "pattern_name": f"bench_{label}", "source_stream_id": "orders",
                "timers": "event_time", "parallelism": PARTITIONS, "kind": "sequence",
                "event_types": list(SEQUENCE), "within_ms": 60_000,
                "co_partitioned": co_partitioned})
            pat = created["pattern_id"]
            await post(f"/patterns/{pat}/start")
            results[label] = await measure(
                session, f"{base}/patterns/{pat}/matches", token, n,
                lambda body: processed(body["metrics"]))
            final = await http_json(session, "GET", f"{base}/patterns/{pat}/matches", token)
            results[label]["matches"] = final["matches_total"]
            await post(f"/patterns/{pat}/stop")
        return results


def run_processors(args: Any) -> dict[str, Any]:
    n, payload_bytes = args.events, args.payload_bytes
    with bench_env() as benv:
        raw = run_async(raw_passthrough(benv, n, b"x" * payload_bytes))
        with worker(benv) as (proc, port), RssSampler(proc.pid) as rss:
            jobs = run_async(run_jobs(benv, port, n, payload_bytes))
        out: dict[str, Any] = {"kind": "processors", "events": n, "payload_bytes": payload_bytes,
                               "raw_passthrough": raw, **jobs, "worker": rss.summary()}
        for label in ("filter", "aggregate", "sequence_pattern",
                      "sequence_pattern_co_partitioned"):
            out[label]["ratio_to_raw"] = round(jobs[label]["events_per_s"]
                                               / raw["events_per_s"], 3)
        return out
