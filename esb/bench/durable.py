"""Durable (Tansu s3 engine on the loopback object store) against memory, in one run (ADR 0014).

    python -m esb.bench.durable [--records 60] [--fill 3000] [--appends 40] [--no-up]
    python -m esb.bench.durable --growth 20000 [--restarts 2]

* ``raw``: produce→consume latency of a bare aiokafka producer/consumer pair tailing one
  partition, one record at a time (every record its own batch object, the worst case for the
  s3 engine), after ``--fill`` single-record batches were written to other topics so the bucket
  is not trivially small (a fetch used to walk the whole bucket);
* ``up``: start-up time of ``esb up`` and the latency of event-sourcing appends through it,
  ``--ephemeral`` against the durable default, counting any non-201 answer (504s);
* ``--growth EVENTS``: how ``ESB_DATA_DIR/broker`` grows per event published through ``esb up``
  (batch endpoint, about 200-byte payloads) and per restart with no traffic (issue 11 §6).

Ratios are durable/memory on the same machine in the same run; absolute figures are noise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from esb.bench.common import latency_summary_ms
from esb.embedded import EmbeddedBroker, StorageMode, free_port


async def _fill(bootstrap: str, batches: int, topics: int = 8) -> None:
    """``batches`` single-record batches spread over ``topics`` other topics."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, max_batch_size=16384)
    await producer.start()
    try:
        sem = asyncio.Semaphore(8)

        async def one(i: int) -> None:
            async with sem:
                await producer.send_and_wait(f"fill{i % topics}", b"x" * 200)

        await asyncio.gather(*(one(i) for i in range(batches)))
    finally:
        await producer.stop()


async def _tail_latency(bootstrap: str, records: int, gap_s: float) -> dict[str, Any]:
    """One record every ``gap_s``; latency from send to the consumer seeing it."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = f"tail{time.time_ns()}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    await producer.send_and_wait(topic, b"-1")  # creates the topic (auto-create)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="latest",
                                fetch_max_wait_ms=100)
    await consumer.start()
    await consumer.seek_to_end()
    sent: dict[int, float] = {}
    seen: list[float] = []

    async def consume() -> None:
        async for msg in consumer:
            i = int(msg.value or b"-1")
            if i in sent:
                seen.append(time.perf_counter() - sent[i])
                if len(seen) >= records:
                    return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.5)
    started = time.perf_counter()
    for i in range(records):
        sent[i] = time.perf_counter()
        await producer.send_and_wait(topic, str(i).encode())
        await asyncio.sleep(gap_s)
    try:
        await asyncio.wait_for(task, 30)
    except TimeoutError:
        task.cancel()
    elapsed = time.perf_counter() - started
    await producer.stop()
    await consumer.stop()
    return {"received": len(seen), "sent": records, "seconds": round(elapsed, 1),
            "latency_ms": latency_summary_ms(seen)}


def raw(storage: StorageMode, records: int, fill: int, gap_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="esb-durable-bench-") as tmp:
        broker = EmbeddedBroker(storage=storage, data_dir=Path(tmp) / "broker",
                                log_path=Path(tmp) / "broker.log").start()
        try:
            bootstrap = broker.url.removeprefix("kafka://")
            started = time.perf_counter()
            asyncio.run(_fill(bootstrap, fill))
            fill_s = time.perf_counter() - started
            result = asyncio.run(_tail_latency(bootstrap, records, gap_s))
        finally:
            broker.stop()
        files = sum(len(f) for _, _, f in os.walk(Path(tmp) / "broker"))
    return {"fill_batches": fill, "fill_s": round(fill_s, 1), "objects": files, **result}


def _start_up(mode: str, data_dir: Path, port: int, env: dict[str, str],
              timeout: float = 180.0) -> tuple[subprocess.Popen[bytes], dict[str, Any], float]:
    started = time.perf_counter()
    err = open(data_dir.parent / f"esb-up{mode}.err", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "esb.cli", "up", mode, "--port", str(port)],
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=err)
    err.close()
    assert proc.stdout is not None
    lines: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.rstrip() == b"}":
            return proc, json.loads(b"".join(lines)), time.perf_counter() - started
    proc.kill()
    raise RuntimeError(f"esb up {mode} printed no banner")


async def _appends(base: str, token: str, count: int) -> dict[str, Any]:
    import aiohttp

    url = base + "/api/v1/event-sourcing/append"
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    first_s = None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        started = time.perf_counter()
        for i in range(count + 1):
            body = {"aggregate_id": f"acc_{i % 5}", "aggregate_type": "Account",
                    "event_type": "account.credited", "event_data": {"n": i},
                    "expected_version": "any"}
            t = time.perf_counter()
            try:
                async with http.post(url, json=body, headers=headers) as resp:
                    status = str(resp.status)
                    await resp.read()
            except TimeoutError:
                status = "timeout"
            took = time.perf_counter() - t
            if i == 0:  # the first append creates the tenant's topics: reported apart
                first_s = round(time.perf_counter() - started, 2)
                continue
            statuses[status] = statuses.get(status, 0) + 1
            latencies.append(took)
    return {"first_append_s": first_s, "statuses": statuses,
            "latency_ms": latency_summary_ms(latencies)}


def _up_env(tmp: Path, database_url: str | None, schema_prefix: str,
            ) -> tuple[Path, dict[str, str]]:
    """A fresh data directory under ``tmp`` and the environment of an ``esb up`` on it (a
    schema of its own when it shares a configured PostgreSQL)."""
    data_dir = tmp / "data"
    data_dir.mkdir()
    env = {"ESB_DATA_DIR": str(data_dir)}
    if database_url:
        env.update(ESB_DATABASE_URL=database_url,
                   ESB_DATABASE_SCHEMA=f"{schema_prefix}{time.time_ns() % 10**9}")
    return data_dir, env


def up(mode: str, appends: int, database_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="esb-durable-bench-up-") as tmp:
        data_dir, env = _up_env(Path(tmp), database_url, "dbench")
        for name in ("ESB_BROKER", "ESB_WEB_PORT"):
            os.environ.pop(name, None)
        port = free_port()
        proc, banner, ready_s = _start_up(mode, data_dir, port, env)
        try:
            base = banner["api"][0].removesuffix("/api/v1")
            result = asyncio.run(_appends(base, banner["dev_token"], appends))
        finally:
            _stop(proc)
    return {"storage": banner["storage"].split(" (")[0], "ready_s": round(ready_s, 1), **result}


def _usage(root: Path) -> dict[str, int]:
    """Objects, their bytes, and what they take on disk (a file per object: whole blocks)."""
    files = size = disk = 0
    for directory, _, names in os.walk(root):
        for name in names:
            with contextlib.suppress(OSError):
                stat = os.stat(os.path.join(directory, name))
                files += 1
                size += stat.st_size
                disk += stat.st_blocks * 512
    return {"objects": files, "bytes": size, "disk_bytes": disk}


def _settled(root: Path, quiet_s: float = 4.0, timeout: float = 120.0) -> dict[str, int]:
    """The broker directory once it stopped changing for ``quiet_s`` (workers caught up)."""
    last, since = _usage(root), time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        time.sleep(0.5)
        now = _usage(root)
        if now != last:
            last, since = now, time.monotonic()
    return last


async def _publish(base: str, token: str, events: int, batch: int = 100,
                   concurrency: int = 4) -> dict[str, Any]:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"}
    pad = "x" * 120  # about 200-byte payloads
    counter = iter(range(0, events, batch))
    failed = 0

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal failed
        for start in counter:
            body = {"events": [
                {"event_type": "user.created", "source_capability": "user_management",
                 "aggregate_id": f"user_{i}", "aggregate_type": "User",
                 "payload": {"n": i, "pad": pad}}
                for i in range(start, min(events, start + batch))]}
            async with http.post(base + "/api/v1/events/batch", json=body,
                                 headers=headers) as resp:
                await resp.read()
                failed += 0 if resp.status == 201 else 1

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        async with http.post(base + "/api/v1/streams", headers=headers, json={
                "stream_name": "growth", "source_capability": "user_management",
                "partitions": 3}) as resp:
            await resp.read()
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    return {"events": events, "events_per_request": batch, "failed_requests": failed,
            "seconds": round(time.perf_counter() - started, 1)}


def growth(events: int, restarts: int, database_url: str | None, batch: int = 100
           ) -> dict[str, Any]:
    """How ``ESB_DATA_DIR/broker`` grows: per published event (stream lanes, ingress,
    changelogs, offsets: everything the bus writes for it) and per restart with no traffic."""
    with tempfile.TemporaryDirectory(prefix="esb-durable-growth-") as tmp:
        data_dir, env = _up_env(Path(tmp), database_url, "dgrowth")
        broker_dir = data_dir / "broker"
        port = free_port()
        proc, banner, _ = _start_up("--durable", data_dir, port, env)
        try:
            base = banner["api"][0].removesuffix("/api/v1")
            idle = _settled(broker_dir)
            published = asyncio.run(_publish(base, banner["dev_token"], events, batch))
            loaded = _settled(broker_dir)
        finally:
            _stop(proc)
        after_stop = _usage(broker_dir)
        sizes = [after_stop]
        for _ in range(restarts):
            proc, _, _ = _start_up("--durable", data_dir, port, env)
            try:
                _settled(broker_dir)
            finally:
                _stop(proc)
            sizes.append(_usage(broker_dir))
    per_event = {k: round((loaded[k] - idle[k]) / events, 2) for k in loaded}
    per_restart = {k: round((sizes[-1][k] - sizes[0][k]) / max(restarts, 1))
                   for k in sizes[0]}
    return {"fresh_start": idle, "after_publish": loaded, "publish": published,
            "per_event": per_event,
            "per_100k_events_mb": {k: round(v * 100_000 / 2**20, 1)
                                   for k, v in per_event.items() if k != "objects"},
            "per_restart": per_restart, "after_restarts": sizes}


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _ratio(durable: dict[str, Any], memory: dict[str, Any], key: str) -> float | None:
    d, m = durable["latency_ms"].get(key), memory["latency_ms"].get(key)
    return round(d / m, 2) if d and m else None


def compare(*, records: int = 60, fill: int = 3000, gap_s: float = 0.05, appends: int = 40,
            database_url: str | None = None, with_raw: bool = True, with_up: bool = True,
            ) -> dict[str, Any]:
    """Memory against durable in the same run: a bare tail, then appends through ``esb up``."""
    out: dict[str, Any] = {}
    if with_raw:
        memory = raw("memory", records, fill, gap_s)
        durable = raw("s3", records, fill, gap_s)
        out["raw"] = {"memory": memory, "durable": durable,
                      "ratio_p50": _ratio(durable, memory, "p50"),
                      "ratio_p95": _ratio(durable, memory, "p95")}
        print(json.dumps(out["raw"]), file=sys.stderr, flush=True)
    if with_up:
        memory = up("--ephemeral", appends, database_url)
        print(json.dumps({"ephemeral": memory}), file=sys.stderr, flush=True)
        durable = up("--durable", appends, database_url)
        out["up"] = {"ephemeral": memory, "durable": durable,
                     "ratio_p50": _ratio(durable, memory, "p50"),
                     "ratio_p95": _ratio(durable, memory, "p95")}
    return out


def run_durable(args: Any) -> dict[str, Any]:
    """``esb bench durable``: issue 11's memory-against-durable comparison with its defaults."""
    return {"benchmark": "durable",
            **compare(database_url=os.environ.get("ESB_BENCH_DATABASE_URL"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m esb.bench.durable")
    parser.add_argument("--records", type=int, default=60)
    parser.add_argument("--gap-ms", type=float, default=50.0)
    parser.add_argument("--fill", type=int, default=3000)
    parser.add_argument("--appends", type=int, default=40)
    parser.add_argument("--no-raw", action="store_true")
    parser.add_argument("--no-up", action="store_true")
    parser.add_argument("--growth", type=int, default=0, metavar="EVENTS",
                        help="instead: publish EVENTS through esb up and measure broker/ growth")
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--growth-batch", type=int, default=100, help="events per request")
    parser.add_argument("--database-url", default=os.environ.get("ESB_BENCH_DATABASE_URL"),
                        help="a PostgreSQL for esb up (default: the embedded one)")
    args = parser.parse_args(argv)
    out: dict[str, Any] = {"benchmark": "durable"}
    if args.growth:
        out["growth"] = growth(args.growth, args.restarts, args.database_url,
                               args.growth_batch)
        print(json.dumps(out, indent=2))
        return 0
    out.update(compare(records=args.records, fill=args.fill, gap_s=args.gap_ms / 1000,
                       appends=args.appends, database_url=args.database_url,
                       with_raw=not args.no_raw, with_up=not args.no_up))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
