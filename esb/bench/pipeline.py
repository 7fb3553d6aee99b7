"""``esb bench pipeline``: events/s through the Kafka ingress (validate + route), against raw
aiokafka consume→produce passthrough on the same broker in the same run, plus end-to-end latency
at a fixed offered rate and the router worker's peak RSS."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import deque
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

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

PARTITIONS = 6
TENANT = "bench"
STREAM = "orders"


def make_payload(size: int) -> bytes:
    base = {"order_id": "ord_000000", "customer_id": "cust_000000", "total": 123.45,
            "currency": "EUR", "pad": ""}
    raw = json.dumps(base).encode()
    base["pad"] = "x" * max(0, size - len(raw))
    return json.dumps(base).encode()


def ce_headers(i: int, event_id: str) -> list[tuple[str, bytes]]:
    return [("ce_specversion", b"1.0"), ("ce_id", event_id.encode()),
            ("ce_source", b"bench"), ("ce_type", b"order.created"),
            ("ce_tenantid", TENANT.encode()), ("ce_aggregateid", f"ord_{i % 10000}".encode()),
            ("content-type", b"application/json")]


def producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                            max_batch_size=1 << 20)


async def create_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(n, PARTITIONS, 1) for n in names if n not in existing]
        if new:
            await admin.create_topics(new)
    finally:
        await admin.close()


async def preload(bootstrap: str, topic: str, n: int, payload: bytes) -> float:
    prod = producer(bootstrap)
    await prod.start()
    started = time.perf_counter()
    try:
        futures = []
        for i in range(n):
            futures.append(await prod.send(topic, payload, key=f"ord_{i % 10000}".encode(),
                                           headers=ce_headers(i, ids.event_id())))
            if len(futures) >= 20000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await prod.stop()
    return n / (time.perf_counter() - started)


async def raw_passthrough(benv: BenchEnv, n: int, payload: bytes) -> dict[str, Any]:
    """The baseline: the same consume→produce pipeline with no validation or routing."""
    src, dst = f"{benv.prefix}.raw.in", f"{benv.prefix}.raw.out"
    await create_topics(benv.bootstrap, [src, dst])
    await preload(benv.bootstrap, src, n, payload)
    consumer = AIOKafkaConsumer(src, bootstrap_servers=benv.bootstrap,
                                group_id=f"{benv.prefix}-raw", enable_auto_commit=False,
                                auto_offset_reset="earliest", max_poll_records=5000,
                                fetch_max_wait_ms=20,
                                fetch_max_bytes=64 << 20, max_partition_fetch_bytes=8 << 20,
                                rebalance_timeout_ms=3000, session_timeout_ms=10000,
                                heartbeat_interval_ms=1000)
    prod = producer(benv.bootstrap)
    await consumer.start()
    await prod.start()
    done = 0
    inflight: deque[tuple[list[Any], dict[TopicPartition, int], int]] = deque()
    started = None
    try:
        while done < n:
            batches = await consumer.getmany(timeout_ms=100)
            if batches:
                started = started or time.perf_counter()
                futures, offsets, count = [], {}, 0
                for tp, records in batches.items():
                    for rec in records:
                        futures.append(await prod.send(dst, rec.value, key=rec.key,
                                                       headers=list(rec.headers)))
                    offsets[tp] = records[-1].offset + 1
                    count += len(records)
                inflight.append((futures, offsets, count))
            while inflight and (len(inflight) > 4 or not batches or inflight[0][0][-1].done()):
                futures, offsets, count = inflight.popleft()
                await asyncio.gather(*futures)
                await consumer.commit(offsets)
                done += count
        elapsed = time.perf_counter() - (started or time.perf_counter())
    finally:
        await consumer.stop()
        await prod.stop()
    return {"events": n, "seconds": round(elapsed, 3), "events_per_s": round(n / elapsed, 1)}


async def wait_committed(bootstrap: str, group: str, topic: str, n: int, timeout: float,
                         already: int = 0) -> dict[str, Any]:
    """Watch the router's committed offsets: rate from its first commit (beyond ``already``,
    what earlier phases routed) until ``n`` more events are committed."""
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    await probe.start()
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    first: tuple[float, int] | None = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            total = 0
            for tp in tps:
                total += (await probe.committed(tp)) or 0
            now = time.perf_counter()
            if total > already and first is None:
                first = (now, total)
            if total >= already + n:
                assert first is not None
                elapsed = now - first[0]
                counted = already + n - first[1]
                if counted <= 0 or elapsed <= 0:
                    raise RuntimeError("the router finished within one commit: raise --events")
                return {"events": n, "seconds": round(elapsed, 3),
                        "events_per_s": round(counted / elapsed, 1)}
            await asyncio.sleep(0.02)
    finally:
        await probe.stop()
    raise RuntimeError(f"router did not commit {n} events within {timeout}s")


async def latency_phase(benv: BenchEnv, rate: int, seconds: float, payload: bytes
                        ) -> dict[str, Any]:
    """Offer a fixed rate to the ingress; time each event until it is readable on the stream."""
    ingress = f"{benv.prefix}.{TENANT}.ingress"  # the tenant's own ingress (ADR 0009)
    lane = f"{benv.prefix}.{TENANT}.{STREAM}.normal"
    consumer = AIOKafkaConsumer(bootstrap_servers=benv.bootstrap, group_id=None,
                                enable_auto_commit=False, fetch_max_wait_ms=20)
    await consumer.start()
    tps = [TopicPartition(lane, p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)
    sent: dict[bytes, float] = {}
    latencies: list[float] = []
    total = int(rate * seconds)

    async def consume() -> None:
        while len(latencies) < total:
            batches = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batches.values():
                for rec in records:
                    eid = next((v for k, v in rec.headers if k == "ce_id"), None)
                    if eid in sent:
                        latencies.append(now - sent.pop(eid))

    prod = AIOKafkaProducer(bootstrap_servers=benv.bootstrap, acks="all", linger_ms=0)
    await prod.start()
    reader = asyncio.ensure_future(consume())
    try:
        started = time.perf_counter()
        for i in range(total):
            target = started + i / rate
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            eid = ids.event_id()
            sent[eid.encode()] = time.perf_counter()
            await prod.send(ingress, payload, key=f"ord_{i}".encode(), headers=ce_headers(i, eid))
        await asyncio.wait_for(reader, timeout=60)
    finally:
        reader.cancel()
        await prod.stop()
        await consumer.stop()
    return {"offered_rate": rate, "seconds": seconds, **latency_summary_ms(latencies)}


async def create_stream(port: int, token: str) -> None:
    async with aiohttp.ClientSession() as session:
        await http_json(session, "POST", f"http://127.0.0.1:{port}/api/v1/streams", token,
                        {"stream_name": STREAM, "source_capability": "bench",
                         "partitions": PARTITIONS})


BENCH_SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "string", "pattern": "^ord_"},
                   "customer_id": {"type": "string"},
                   "total": {"type": "number", "minimum": 0},
                   "currency": {"type": "string", "enum": ["EUR", "USD", "GBP"]},
                   "pad": {"type": "string"}},
    "required": ["order_id", "customer_id", "total", "currency"],
}


async def register_bench_schema(port: int, token: str) -> None:
    """A JSON Schema plus a CEL business rule for the bench event type: every event validated."""
    async with aiohttp.ClientSession() as session:
        await http_json(session, "POST", f"http://127.0.0.1:{port}/api/v1/schemas/enhanced", token,
                        {"schema_name": "bench_order", "event_type": "order.created",
                         "json_schema": BENCH_SCHEMA,
                         "validation_rules": {"business_rules": [
                             {"name": "positive_total", "rule": "total >= 0.0"}]}})


#: ``--tracing`` phases: name -> the worker's OTEL_* environment (ADR 0019)
TRACING_PHASES: dict[str, dict[str, str]] = {
    "tracing_off": {},
    "tracing_1pct": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                     "OTEL_TRACES_SAMPLER_ARG": "0.01"},
    "tracing_100pct": {"OTEL_TRACES_SAMPLER": "parentbased_always_on"},
}


def run_tracing_cost(args: Any) -> dict[str, Any]:
    """The router's throughput with tracing off, at 1 % and at 100 % sampling (spans exported
    over OTLP/HTTP to a local sink), each as a ratio to raw passthrough and to tracing off."""
    from esb.bench.common import STAGE_ONLY_ENV
    from esb.bench.otlp_sink import OtlpSink
    from esb.embedded import free_port, spawn_worker, stop_process

    payload = make_payload(args.payload_bytes)
    phases: dict[str, Any] = {}
    with bench_env() as benv, OtlpSink() as sink:
        ingress = f"{benv.prefix}.{TENANT}.ingress"
        group = f"{benv.prefix}-router-normal"
        with worker(benv, ESB_ROUTER_ENABLED="false") as (_api, port):
            baseline = run_async(raw_passthrough(benv, args.events, payload))
            run_async(create_stream(port, token_for(benv, TENANT)))
        for done, (name, otel) in enumerate(TRACING_PHASES.items()):
            env = ({"OTEL_TRACES_EXPORTER": "otlp",
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": sink.endpoint, **otel} if otel
                   else {"OTEL_TRACES_EXPORTER": "none"})
            print(f"esb bench: phase {name}", file=sys.stderr, flush=True)
            run_async(preload(benv.bootstrap, ingress, args.events, payload))
            exported = sink.requests
            # not health-gated: on a loaded machine the backlog was routed before /health said
            # 200; the rate counts from the router's first commit
            proc = spawn_worker({**benv.env, **STAGE_ONLY_ENV, **env}, free_port(),
                                benv.data_dir / f"router-{name}.log")
            try:
                routed = run_async(wait_committed(benv.bootstrap, group, ingress, args.events,
                                                  timeout=900, already=done * args.events))
            finally:
                stop_process(proc)
            phases[name] = {**routed,
                            "ratio": round(routed["events_per_s"] / baseline["events_per_s"], 3),
                            "otlp_exports": sink.requests - exported}
    off = phases["tracing_off"]["events_per_s"]
    for phase in phases.values():
        phase["ratio_to_tracing_off"] = round(phase["events_per_s"] / off, 3)
    return {"benchmark": "pipeline", "mode": "tracing", "events": args.events,
            "payload_bytes": len(payload), "baseline_raw_aiokafka_passthrough": baseline,
            **phases}


def run_pipeline(args: Any) -> dict[str, Any]:
    """Baseline, then the router with schema validation off, then on (same stream, same run).
    ``--tracing``: the cost of tracing instead (:func:`run_tracing_cost`)."""
    if getattr(args, "tracing", False):
        return run_tracing_cost(args)
    payload = make_payload(args.payload_bytes)
    phases: dict[str, Any] = {}
    with bench_env() as benv:
        ingress = f"{benv.prefix}.{TENANT}.ingress"  # the tenant's own ingress (ADR 0009)
        group = f"{benv.prefix}-router-normal"
        with worker(benv, ESB_ROUTER_ENABLED="false") as (_api, port):
            token = token_for(benv, TENANT)
            baseline = run_async(raw_passthrough(benv, args.events, payload))
            run_async(create_stream(port, token))
            for done, validation in enumerate(("off", "on")):
                if validation == "on":
                    run_async(register_bench_schema(port, token))
                run_async(preload(benv.bootstrap, ingress, args.events, payload))
                with worker(benv) as (router, _port), RssSampler(router.pid) as rss:
                    routed = run_async(wait_committed(benv.bootstrap, group, ingress, args.events,
                                                      timeout=600, already=done * args.events))
                    phase: dict[str, Any] = {
                        "validated_and_routed": routed,
                        "ratio": round(routed["events_per_s"] / baseline["events_per_s"], 3),
                        "router_worker_memory": {"throughput_phase": rss.summary()}}
                    if validation == "off":
                        mark = rss.mark()
                        phase["end_to_end_latency_ms"] = run_async(latency_phase(
                            benv, args.latency_rate, args.latency_seconds, payload))
                        phase["router_worker_memory"]["steady_rate_phase"] = rss.summary(mark)
                phases[f"validation_{validation}"] = phase
    off, on = phases["validation_off"], phases["validation_on"]
    return {
        "benchmark": "pipeline",
        "events": args.events,
        "payload_bytes": len(payload),
        "baseline_raw_aiokafka_passthrough": baseline,
        "ratio": off["ratio"],
        "ratio_with_validation": on["ratio"],
        "validated_and_routed": off["validated_and_routed"],
        "end_to_end_latency_ms": off["end_to_end_latency_ms"],
        "router_worker_memory": off["router_worker_memory"],
        "with_schema_validation": on,
    }
