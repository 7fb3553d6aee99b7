"""``esb bench pipeline``: events/s through the Kafka ingress (validate + route), against raw
aiokafka consume→produce passthrough on the same broker in the same run, plus end-to-end latency
at a fixed offered rate and the router worker's peak RSS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import psutil
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
    wait_healthy,
    worker,
)

PARTITIONS = 6
TENANT = "bench"
#: the share of a single router's backlog it routes before its rate is counted (start-up)
ROUTER_WARM_UP = 0.25
#: the latency phase's reader polls this often: Tansu answers a long poll when its wait is over
READER_WAIT_MS = 2
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
                         already: int = 0, warm_up: float = 0.0) -> dict[str, Any]:
    """Watch the router's committed offsets: rate from its first commit (beyond ``already``,
    what earlier phases routed, and beyond the first ``warm_up`` fraction of ``n``, routed while
    the worker was still starting) until ``n`` more events are committed."""
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    await probe.start()
    first: tuple[float, int] | None = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            total = await committed_total(probe, topic)
            now = time.perf_counter()
            if total > already + warm_up * n and first is None:
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
                                # the bench's own reader: its wait is not the router's latency
                                enable_auto_commit=False, fetch_max_wait_ms=READER_WAIT_MS)
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


# --- scale-out (``--workers N``): N routers in one consumer group ---------------------------

def metric_sum(port: int, name: str, label: str = "") -> float | None:
    """A Prometheus series summed over its labels (``label``: a substring the line must hold)
    from a worker's ``/metrics``; None when the worker does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith((f"{name}{{", f"{name} ")) and label in line)


def wait_group_stable(ports: list[int], timeout: float = 180.0) -> list[int]:
    """Until every router owns ingress partitions and together they own all of them, i.e. the
    group has settled with one member per worker (each sets ``esb_router_assigned_partitions``
    on every assignment). Held for two looks half a second apart, so that the gauge a revoked
    worker still shows mid-rebalance is not taken for the end of one. Returns the partitions each
    owns."""
    deadline = time.monotonic() + timeout
    settled, owned = 0, [0] * len(ports)
    while time.monotonic() < deadline:
        owned = [int(metric_sum(port, "esb_router_assigned_partitions", 'lane="normal"') or 0)
                 for port in ports]
        settled = settled + 1 if all(owned) and sum(owned) == PARTITIONS else 0
        if settled >= 2:
            return owned
        time.sleep(0.5)
    raise RuntimeError(f"router group not settled on {len(ports)} members after {timeout}s "
                       f"(partitions owned: {owned})")


def broker_process() -> psutil.Process | None:
    """The embedded Tansu bench_env started (our child); None with an external ESB_BROKER."""
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "--listener-url" in child.cmdline():
                return child
    return None


def cpu_seconds(procs: dict[str, psutil.Process]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, proc in procs.items():
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            out[name] = times.user + times.system
    return out


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy, all cores (others' load included)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


@contextlib.contextmanager
def routers(benv: BenchEnv, n: int, name: str, *, gated: bool = True, **env: str
            ) -> Iterator[list[tuple[Any, int]]]:
    """``n`` router workers started together (projection off, as everywhere in this bench);
    ``gated``: yielded once all say /health 200; ``env`` on top of the bench's."""
    from esb.bench.common import STAGE_ONLY_ENV
    from esb.embedded import free_port, spawn_worker, stop_process

    started: list[tuple[Any, int]] = []
    try:
        for i in range(n):
            port = free_port()
            started.append((spawn_worker({**benv.env, **STAGE_ONLY_ENV, **env}, port,
                                         benv.data_dir / f"router-{name}-{i}.log"), port))
        for proc, port in started:
            if gated:
                wait_healthy(port, proc)
        yield started
    finally:
        with ThreadPoolExecutor(max(1, len(started))) as pool:  # their shutdowns overlap
            list(pool.map(stop_process, [proc for proc, _port in started]))


async def committed_total(probe: AIOKafkaConsumer, topic: str) -> int:
    """The group's committed offsets on the ingress, summed over its partitions."""
    return sum([(await probe.committed(TopicPartition(topic, p))) or 0
                for p in range(PARTITIONS)])


async def drain(bootstrap: str, group: str, topic: str, target: int,
                snapshot: Callable[[], dict[str, Any]], timeout: float = 900.0
                ) -> dict[str, Any]:
    """Time the routers, already settled in their group, from now until the group has committed
    ``target``; ``snapshot`` is taken at both ends of the window."""
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    await probe.start()
    try:
        start, started = await committed_total(probe, topic), time.perf_counter()
        before = snapshot()
        deadline = time.monotonic() + timeout
        while await committed_total(probe, topic) < target:
            if time.monotonic() > deadline:
                raise RuntimeError(f"routers did not commit up to {target} within {timeout}s")
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
        after = snapshot()
    finally:
        await probe.stop()
    return {"counted": target - start, "seconds": elapsed, "before": before, "after": after}


def scale_phase(benv: BenchEnv, n_workers: int, events: int,
                others: dict[str, psutil.Process]) -> dict[str, Any]:
    """``n_workers`` routers in a group of their own (``ESB_APP_ID``) drain the whole ingress
    (``events`` records, all the earlier phases'), timed once their group has settled; with each
    worker's CPU seconds, events routed and peak RSS, and every other process's CPU.

    A fresh group per phase: on Tansu a group whose members all left did not settle again for a
    new member (it re-joined every ~13 s for minutes), and a fresh group reads from the start,
    so the backlog is the same for one worker and for N. Not health-gated: /health lags the
    routers' start-up."""
    ingress = f"{benv.prefix}.{TENANT}.ingress"
    app_id = f"{benv.prefix}x{n_workers}"
    group = f"{app_id}-router-normal"
    print(f"esb bench: scale-out phase, {n_workers} router worker(s)", file=sys.stderr,
          flush=True)
    target = events
    with routers(benv, n_workers, f"x{n_workers}", gated=False, ESB_APP_ID=app_id) as started, \
            contextlib.ExitStack() as stack:
        ports = [port for _proc, port in started]
        owned = wait_group_stable(ports)  # the window opens once the group has settled
        workers = {f"worker_{i}": psutil.Process(proc.pid) for i, (proc, _) in enumerate(started)}
        watched = {**workers, **others}
        rss = {name: stack.enter_context(RssSampler(proc.pid)) for name, proc in workers.items()}

        def snapshot() -> dict[str, Any]:
            return {"cpu": cpu_seconds(watched), "machine": machine_busy_seconds(),
                    "routed": {name: metric_sum(port, "esb_events_routed_total")
                               for name, port in zip(workers, ports, strict=True)}}

        run = run_async(drain(benv.bootstrap, group, ingress, target, snapshot))
    seconds, counted = run["seconds"], run["counted"]
    if counted < events // 4 or seconds <= 0:
        raise RuntimeError(f"only {counted} of {events} events were left when the group of "
                           f"{n_workers} had settled: raise --events")
    before, after = run["before"], run["after"]
    cpu = {name: after["cpu"][name] - before["cpu"][name]
           for name in after["cpu"] if name in before["cpu"]}
    per_worker: dict[str, Any] = {}
    for i, name in enumerate(workers):
        was, now = before["routed"][name], after["routed"][name]
        routed = now - was if was is not None and now is not None else counted / n_workers
        used = cpu.get(name, 0.0)
        per_worker[name] = {
            "partitions": owned[i], "routed": int(routed), "cpu_s": round(used, 2),
            "cores_busy": round(used / seconds, 2),
            "events_per_cpu_s": round(routed / used, 1) if used else None,
            "peak_rss_mb": rss[name].summary()["peak_rss_mb"]}
    workers_cpu = sum(cpu.get(name, 0.0) for name in workers)
    machine = (after["machine"] - before["machine"]) / seconds
    cores = {"workers": round(workers_cpu / seconds, 2),
             **{name: round(cpu[name] / seconds, 2) for name in others if name in cpu},
             # the machine is shared: what else ran beside this bench in the window
             "rest_of_machine": round(max(0.0, machine - sum(cpu.values()) / seconds), 2),
             "machine": round(machine, 2), "machine_cores": psutil.cpu_count() or 0}
    # a worker with a core of its own runs at most at its events per CPU second
    own_core = sum(w["events_per_cpu_s"] or 0.0 for w in per_worker.values())
    broker_cores = cores.get("broker")
    rate = counted / seconds
    return {
        "events": events, "measured_events": counted, "seconds": round(seconds, 3),
        "events_per_s": round(rate, 1), "per_worker": per_worker, "cpu_cores_busy": cores,
        "core_per_worker_estimate": {
            "events_per_s": round(own_core, 1),
            "broker_cores_needed": (round(broker_cores * own_core / rate, 2)
                                    if broker_cores is not None else None)},
    }


SCALE_HOW = ("after the single-router phases, each phase starts its routers together in a "
             "group of its own, which reads the whole ingress from the start, and times that "
             "backlog from when the group has settled with one member per worker (every worker "
             "owns ingress partitions, all 6 owned; what was routed before is not counted) "
             "until every event is committed; CPU is psutil cpu_times of each process over that "
             "window. core_per_worker_estimate"
             " sums each worker's events per CPU second (its rate with a whole core), assuming "
             "the broker gets the cores it needs (broker_cores_needed: its measured cores scaled "
             "to that rate) and nothing but CPU binds first")


def scale_verdict(scaled: dict[str, Any]) -> str:
    """What limits the N-worker rate, in one sentence from the CPU figures."""
    cores = scaled["cpu_cores_busy"]
    busy, total = cores["machine"], cores["machine_cores"]
    parts = ", ".join(f"{name} {value}" for name, value in cores.items()
                      if name not in ("machine", "machine_cores"))
    if total and busy >= 0.9 * total:
        return (f"CPU-bound: {busy} of {total} cores busy ({parts}); the routers, the broker "
                "and whatever else runs share every core, so another worker adds no CPU here")
    return (f"not CPU-bound: {busy} of {total} cores busy ({parts}); the limit is elsewhere "
            "(broker, commit round trips, partition balance)")


def run_scale_out(benv: BenchEnv, n_workers: int, events: int,
                  others: dict[str, psutil.Process], raw_rate: float) -> dict[str, Any]:
    """One router, then ``n_workers``, measured alike in the same run (``esb bench pipeline
    --workers N``, issue 15 goal 7) on the ``events`` already on the ingress."""
    one = scale_phase(benv, 1, events, others)
    many = scale_phase(benv, n_workers, events, others)
    estimate, alone = many["core_per_worker_estimate"], one["core_per_worker_estimate"]
    estimate["ratio_to_one_worker_on_its_core"] = (
        round(estimate["events_per_s"] / alone["events_per_s"], 3) if alone["events_per_s"]
        else None)
    return {"workers": n_workers, "validation": "on", **many,
            "ratio_to_one_worker": round(many["events_per_s"] / one["events_per_s"], 3),
            "ratio_to_raw": round(many["events_per_s"] / raw_rate, 3),
            "limit": scale_verdict(many), "how": SCALE_HOW, "one_worker": one}


def run_pipeline(args: Any) -> dict[str, Any]:
    """Baseline, then the router with schema validation off, then on (same stream, same run).
    ``--workers N`` (N > 1): after them, one router then N in one group
    (:func:`run_scale_out`). ``--tracing``: the cost of tracing instead
    (:func:`run_tracing_cost`)."""
    if getattr(args, "tracing", False):
        return run_tracing_cost(args)
    n_workers = getattr(args, "workers", 1)
    if not 1 <= n_workers <= PARTITIONS:
        raise ValueError(f"--workers {n_workers}: 1 to {PARTITIONS} (one ingress partition each)")
    payload = make_payload(args.payload_bytes)
    phases: dict[str, Any] = {}
    scale_out: dict[str, Any] | None = None
    with bench_env() as benv:
        ingress = f"{benv.prefix}.{TENANT}.ingress"  # the tenant's own ingress (ADR 0009)
        group = f"{benv.prefix}-router-normal"
        with worker(benv, ESB_ROUTER_ENABLED="false") as (api, port):
            token = token_for(benv, TENANT)
            baseline = run_async(raw_passthrough(benv, args.events, payload))
            run_async(create_stream(port, token))
            for done, validation in enumerate(("off", "on")):
                if validation == "on":
                    run_async(register_bench_schema(port, token))
                run_async(preload(benv.bootstrap, ingress, args.events, payload))
                # not health-gated: the worker says 200 some 10 s after its start, by when the
                # router had routed most of the backlog; the rate skips the first quarter instead
                with routers(benv, 1, validation, gated=False) as [(router, router_port)], \
                        RssSampler(router.pid) as rss:
                    routed = run_async(wait_committed(
                        benv.bootstrap, group, ingress, args.events, timeout=600,
                        already=done * args.events, warm_up=ROUTER_WARM_UP))
                    phase: dict[str, Any] = {
                        "validated_and_routed": routed,
                        "ratio": round(routed["events_per_s"] / baseline["events_per_s"], 3),
                        "router_worker_memory": {"throughput_phase": rss.summary()}}
                    if validation == "off":
                        wait_healthy(router_port, router)
                        mark = rss.mark()
                        phase["end_to_end_latency_ms"] = run_async(latency_phase(
                            benv, args.latency_rate, args.latency_seconds, payload))
                        phase["router_worker_memory"]["steady_rate_phase"] = rss.summary(mark)
                phases[f"validation_{validation}"] = phase
            if n_workers > 1:  # last: both phases' events and the latency phase's are the backlog
                others = {"broker": broker_process(), "api_worker": psutil.Process(api.pid),
                          "bench": psutil.Process()}
                on_ingress = 2 * args.events + int(args.latency_rate * args.latency_seconds)
                scale_out = run_scale_out(
                    benv, n_workers, on_ingress,
                    {k: v for k, v in others.items() if v is not None}, baseline["events_per_s"])
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
        **({"scale_out": scale_out} if scale_out else {}),
    }
