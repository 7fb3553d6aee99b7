"""``esb bench sourcing``: event-sourcing appends and reconstruction through the HTTP API.

* uncontended: appends/s spread over many aggregates (``expected_version`` "any");
* contended: appends/s on ONE aggregate by ``--concurrency`` writers, each stating the exact
  version it last saw and retrying on 409 with the version the conflict reported;
* reconstruct: server-side fold time for aggregates of 100, 1k and 10k events, with the
  snapshot (default policy: every 100 events) and without (``use_snapshots: false``); the ratio
  10k/100 with snapshots should stay near 1.

``--events`` bounds the uncontended phase (at most 20000); ``ESB_BENCH_SOURCING_SIZES``
(comma-separated) overrides the reconstruct sizes.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

import aiohttp

from esb import ids
from esb.bench.common import bench_env, latency_summary_ms, run_async, token_for, worker

TENANT = "bench"
APPEND = "/api/v1/event-sourcing/append"
RECONSTRUCT = "/api/v1/event-sourcing/reconstruct"


async def _post(session: aiohttp.ClientSession, url: str, token: str, body: Any,
                ) -> tuple[int, Any]:
    async with session.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status, await r.json(content_type=None)


def _append(agg: str, i: int, expected: Any = "any", aggregate_type: str = "Account") -> dict:  # type: ignore[type-arg]
    return {"aggregate_id": agg, "aggregate_type": aggregate_type, "event_type": "account.credited",
            "event_data": {"n": i, f"f{i % 10}": i, "balance": i * 3}, "expected_version": expected}


async def _warm_up(session: aiohttp.ClientSession, base: str, token: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status, _ = await _post(session, base + APPEND, token, _append("warmup", 0))
        if status == 201:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError("the worker never accepted an append")


async def _fill(session: aiohttp.ClientSession, base: str, token: str, work: list[dict],  # type: ignore[type-arg]
                concurrency: int) -> list[float]:
    latencies: list[float] = []
    queue = list(reversed(work))

    async def client() -> None:
        while queue:
            body = queue.pop()
            started = time.perf_counter()
            status, answer = await _post(session, base + APPEND, token, body)
            if status != 201:
                raise RuntimeError(f"append failed: {status} {answer}")
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies


async def _uncontended(session: Any, base: str, token: str, events: int,
                       concurrency: int) -> dict[str, Any]:
    aggregates = max(1, min(1000, events // 5))
    prefix = ids.ulid()[-6:].lower()
    work = [_append(f"acc_{prefix}_{i % aggregates}", i) for i in range(events)]
    started = time.perf_counter()
    latencies = await _fill(session, base, token, work, concurrency)
    elapsed = time.perf_counter() - started
    return {"appends": events, "aggregates": aggregates, "concurrency": concurrency,
            "appends_per_s": round(events / elapsed, 1),
            "latency_ms": latency_summary_ms(latencies)}


async def _contended(session: Any, base: str, token: str, appends: int,
                     writers: int) -> dict[str, Any]:
    agg = f"hot_{ids.ulid()[-8:].lower()}"
    accepted = conflicts = 0
    versions: list[int] = []

    async def writer() -> None:
        nonlocal accepted, conflicts
        seen = 0
        while accepted < appends:
            status, answer = await _post(session, base + APPEND, token, _append(agg, seen, seen))
            if status == 201:
                accepted += 1
                versions.append(answer["version"])
                seen = answer["version"]
            elif status == 409:
                conflicts += 1
                seen = answer["current_version"]
            else:
                raise RuntimeError(f"append failed: {status} {answer}")

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    elapsed = time.perf_counter() - started
    contiguous = sorted(versions) == list(range(1, len(versions) + 1))
    return {"writers": writers, "accepted": accepted, "conflicts": conflicts,
            "accepted_per_s": round(accepted / elapsed, 1),
            "attempts_per_s": round((accepted + conflicts) / elapsed, 1),
            "versions_contiguous": contiguous}


async def _reconstruct_times(session: Any, base: str, token: str, agg: str,
                             use_snapshots: bool, repeats: int = 7) -> dict[str, Any]:
    server_ms, wall_ms = [], []
    answer: Any = None
    for _ in range(repeats):
        started = time.perf_counter()
        status, answer = await _post(session, base + RECONSTRUCT, token, {
            "aggregate_id": agg, "aggregate_type": "Account", "use_snapshots": use_snapshots})
        wall_ms.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"reconstruct failed: {status} {answer}")
        server_ms.append(answer["reconstruct_ms"])
    return {"server_ms_median": round(statistics.median(server_ms), 3),
            "http_ms_median": round(statistics.median(wall_ms), 3),
            "events_applied": answer["events_applied"],
            "snapshot_version": answer["snapshot_version"]}


async def _reconstruct(session: Any, base: str, token: str, sizes: list[int],
                       concurrency: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    prefix = ids.ulid()[-6:].lower()
    for size in sizes:
        agg = f"big_{prefix}_{size}"
        await _fill(session, base, token, [_append(agg, i) for i in range(size)], concurrency)
        out[str(size)] = {
            "with_snapshots": await _reconstruct_times(session, base, token, agg, True),
            "without_snapshots": await _reconstruct_times(session, base, token, agg, False),
        }
    smallest, largest = str(sizes[0]), str(sizes[-1])
    out["ratio_largest_to_smallest_with_snapshots"] = round(
        out[largest]["with_snapshots"]["server_ms_median"]
        / max(out[smallest]["with_snapshots"]["server_ms_median"], 1e-3), 2)
    return out


async def _run(port: int, token: str, args: Any, sizes: list[int]) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    concurrency = max(1, min(args.concurrency, 64))
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await _warm_up(session, base, token)
        return {
            "uncontended": await _uncontended(session, base, token,
                                              max(100, min(args.events, 20_000)), concurrency),
            "contended_one_aggregate": await _contended(session, base, token, 500,
                                                        min(concurrency, 16)),
            "reconstruct": await _reconstruct(session, base, token, sizes, concurrency),
        }


def run_sourcing(args: Any) -> dict[str, Any]:
    sizes = [int(s) for s in os.environ.get("ESB_BENCH_SOURCING_SIZES",
                                            "100,1000,10000").split(",")]
    with bench_env() as benv, worker(benv, ESB_SOURCING_SNAPSHOT_EVERY="100") as (_proc, port):
        result = run_async(_run(port, token_for(benv, TENANT), args, sorted(sizes)))
    return {"benchmark": "sourcing", "snapshot_every": 100, **result}
