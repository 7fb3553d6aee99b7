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


def processed(body: dict[str, Any]) -> int:
    """Inputs a job has handled, from its metrics (errors count: they were consumed too)."""
    return int(body["events_processed"]) + int(body["error_count"])


def pattern_processed(body: dict[str, Any]) -> int:
    return processed(body["metrics"])


#: The processor jobs on the orders stream: a FILTER and a tumbling AGGREGATE (sum by region).
JOBS: dict[str, dict[str, Any]] = {
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


def pattern_body(label: str, co_partitioned: bool) -> dict[str, Any]:
    """The placed → paid → shipped sequence per order, on event time."""
    return {"pattern_name": f"bench_{label}", "source_stream_id": "orders",
            "timers": "event_time", "parallelism": PARTITIONS, "kind": "sequence",
            "event_types": list(SEQUENCE), "within_ms": 60_000,
            "co_partitioned": co_partitioned}


class Api:
    """The worker's API as the bench's tenant."""

    def __init__(self, session: aiohttp.ClientSession, benv: BenchEnv, port: int) -> None:
        self.session = session
        self.base = f"http://127.0.0.1:{port}/api/v1"
        self.token = token_for(benv, TENANT)

    async def post(self, path: str, body: Any = None) -> Any:
        return await http_json(self.session, "POST", self.base + path, self.token, body)

    async def get(self, path: str) -> Any:
        return await http_json(self.session, "GET", self.base + path, self.token)


async def create_streams(api: Api) -> dict[str, Any]:
    """The orders source and the two targets; returns each stream's description by name."""
    streams = {}
    for name in ("orders", "filtered", "sales"):
        created = await api.post("/streams", {"stream_name": name, "partitions": PARTITIONS,
                                              "source_capability": "bench"})
        streams[name] = created["stream"]
    return streams


async def start_processor(api: Api, body: dict[str, Any]) -> str:
    """Creates and starts a processor; returns its path."""
    created = await api.post("/stream-processors", body)
    pid = created["processor_id"]
    await api.post(f"/stream-processors/{pid}/start")
    return f"/stream-processors/{pid}"


async def start_pattern(api: Api, body: dict[str, Any]) -> str:
    """Creates and starts a pattern; returns its path."""
    created = await api.post("/patterns", body)
    pat = created["pattern_id"]
    await api.post(f"/patterns/{pat}/start")
    return f"/patterns/{pat}"


async def run_jobs(benv: BenchEnv, port: int, n: int, payload_bytes: int) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        api = Api(session, benv, port)
        streams = await create_streams(api)
        await preload(benv.bootstrap, streams["orders"]["topics"]["NORMAL"], n, payload_bytes)
        results: dict[str, Any] = {}
        for label, body in JOBS.items():
            path = await start_processor(api, body)
            results[label] = await measure(session, f"{api.base}{path}/metrics", api.token, n,
                                           processed)
            await api.post(f"{path}/stop")
        # The orders stream is keyed by order id, the sequence's correlation key: the same
        # pattern once through the re-key stage (the default) and once without it.
        for label, co_partitioned in (("sequence_pattern", False),
                                      ("sequence_pattern_co_partitioned", True)):
            path = await start_pattern(api, pattern_body(label, co_partitioned))
            results[label] = await measure(session, f"{api.base}{path}/matches", api.token, n,
                                           pattern_processed)
            final = await api.get(f"{path}/matches")
            results[label]["matches"] = final["matches_total"]
            await api.post(f"{path}/stop")
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
