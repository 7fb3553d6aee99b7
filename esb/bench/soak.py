"""``esb bench soak``: does the worker's RSS stay flat at a steady rate? (issue 15, goal 6)

The processors bench preloads and bursts, so its RSS growth says nothing about a steady state.
Here one worker runs the processors bench's FILTER, tumbling AGGREGATE and (re-keyed) sequence
pattern *at the same time* on the orders stream, first on a short preloaded burst (the peak:
the slowest job's events/s with all three running), then fed at half that peak (or ``--rate``)
for ``--seconds``. RSS is sampled every second; ``flat`` means the end is within ±5% of the RSS
after warm-up (10% of the run, at most 60 s). Lag (produced - processed) when the producer stops
shows the jobs kept up; the run then drains so every job ends having processed every event.

Not part of ``esb bench all`` (it takes ten minutes); run it on its own::

    esb bench soak                          # 600 s at half the measured peak
    esb bench soak --seconds 60 --rate 500  # shorter, fixed offered rate, no peak burst
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import psutil
from aiokafka import AIOKafkaProducer

from esb.bench.common import (
    BenchEnv,
    RssSampler,
    bench_env,
    http_json,
    run_async,
    worker,
)
from esb.bench.processors import (
    JOBS,
    Api,
    create_streams,
    measure,
    pattern_body,
    preload,
    processed,
    record,
    start_pattern,
    start_processor,
)

FLAT_PERCENT = 5.0
PEAK_EVENTS = 30_000
SERIES_POINTS = 20


class Offered:
    """Events the paced producer has had acknowledged so far (read by the monitor)."""

    def __init__(self, first_index: int) -> None:
        self.first_index = first_index
        self.acked = 0
        self.sent = 0


async def produce_at_rate(bootstrap: str, topic: str, rate: float, seconds: float,
                          payload_bytes: int, offered: Offered) -> None:
    """Sends ``rate`` events/s for ``seconds`` on a fixed schedule (no catch-up bursts beyond
    the schedule), continuing the orders' numbering so every order stays a full sequence."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    pad = "x" * max(0, payload_bytes - 80)
    pending: list[asyncio.Future[Any]] = []
    start = time.monotonic()
    try:
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(rate * elapsed)
            now_ms = int(time.time() * 1000)
            while offered.sent < due:
                i = offered.first_index + offered.sent
                key, value, headers = record(i, now_ms - i, pad)  # event time = now
                pending.append(await producer.send(topic, value, key=key, headers=headers))
                offered.sent += 1
            done = [f for f in pending if f.done()]
            for f in done:
                f.result()  # a failed send fails the bench
            offered.acked += len(done)
            pending = [f for f in pending if not f.done()]
            await asyncio.sleep(0.02)
        await asyncio.gather(*pending)
        offered.acked += len(pending)
    finally:
        await producer.stop()


@dataclass(frozen=True)
class RunningJob:
    """A started job: the URL of its metrics, and where they sit in that URL's answer."""

    url: str
    metrics_of: Callable[[Any], dict[str, Any]]

    def read(self, body: Any) -> int:
        return processed(self.metrics_of(body))


async def start_jobs(api: Api) -> dict[str, RunningJob]:
    """The FILTER, the tumbling AGGREGATE and the re-keyed sequence pattern, all at once."""
    jobs: dict[str, RunningJob] = {}
    for label, body in JOBS.items():
        path = await start_processor(api, body)
        jobs[label] = RunningJob(f"{api.base}{path}/metrics", lambda body: body)
    path = await start_pattern(api, pattern_body("sequence_pattern", co_partitioned=False))
    jobs["sequence_pattern"] = RunningJob(f"{api.base}{path}/matches",
                                          lambda body: body["metrics"])
    return jobs


async def metrics(api: Api, jobs: dict[str, RunningJob]) -> dict[str, dict[str, Any]]:
    bodies = await asyncio.gather(*(http_json(api.session, "GET", job.url, api.token)
                                    for job in jobs.values()))
    return {label: job.metrics_of(body) for (label, job), body in zip(jobs.items(), bodies,
                                                                       strict=True)}


async def counts(api: Api, jobs: dict[str, RunningJob]) -> dict[str, int]:
    return {label: processed(m) for label, m in (await metrics(api, jobs)).items()}


async def measure_peak(api: Api, jobs: dict[str, RunningJob], n: int) -> dict[str, Any]:
    """Times each job through the ``n`` preloaded events; the peak is the slowest job's rate,
    since all three share the worker for the whole soak."""
    per_job = await asyncio.gather(*(measure(api.session, job.url, api.token, n, job.read)
                                     for job in jobs.values()))
    return {"events": n, "jobs": dict(zip(jobs, per_job, strict=True)),
            "events_per_s": min(j["events_per_s"] for j in per_job)}


async def wait_until(api: Api, jobs: dict[str, RunningJob], target: int,
                     timeout: float) -> tuple[dict[str, int], float]:
    """Polls the jobs until each processed ``target`` events; returns counts and seconds."""
    start = time.monotonic()
    while True:
        waited = time.monotonic() - start
        try:
            now = await counts(api, jobs)
        except RuntimeError:  # a metrics read can time out on a busy worker: ask again
            if waited >= timeout:
                raise
        else:
            if min(now.values()) >= target or waited >= timeout:
                return now, round(waited, 1)
        await asyncio.sleep(0.5)


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


async def soak(benv: BenchEnv, proc: Any, port: int, rss: RssSampler, seconds: float,
               rate: float | None, peak_events: int, payload_bytes: int) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        api = Api(session, benv, port)
        topic = (await create_streams(api))["orders"]["topics"]["NORMAL"]
        peak: dict[str, Any] | None = None
        preloaded = 0
        if rate is None:
            preloaded = peak_events
            await preload(benv.bootstrap, topic, preloaded, payload_bytes)
        jobs = await start_jobs(api)
        if rate is None:
            peak = await measure_peak(api, jobs, preloaded)
            rate = round(peak["events_per_s"] / 2, 1)
        await wait_until(api, jobs, preloaded, timeout=600)
        offered = Offered(first_index=preloaded)
        worker_proc = psutil.Process(proc.pid)
        cpu0, t0, mark = cpu_seconds(worker_proc), time.monotonic(), rss.mark()
        producer = asyncio.create_task(produce_at_rate(
            benv.bootstrap, topic, rate, seconds, payload_bytes, offered))
        series = await sample_series(api, jobs, rss, offered, producer, t0, seconds, preloaded)
        await producer
        cpu1, t1 = cpu_seconds(worker_proc), time.monotonic()
        at_end = await counts(api, jobs)
        end_mark = rss.mark()
        total = preloaded + offered.acked
        drained, drain_s = await wait_until(api, jobs, total, timeout=max(60.0, seconds / 5))
        final = await metrics(api, jobs)
        return {
            "kind": "soak", "seconds": seconds, "payload_bytes": payload_bytes,
            "peak": peak, "rate_offered": rate,
            "rate_achieved": round(offered.acked / (t1 - t0), 1),
            "produced": offered.acked, "preloaded": preloaded,
            "lag_at_end": {k: total - v for k, v in at_end.items()},
            "processed_after_drain": {k: v - preloaded for k, v in drained.items()},
            "drain_seconds": drain_s,
            # late inputs are counted as processed but also dead-lettered: none are expected
            "late_events": {k: m.get("late_events") for k, m in final.items()},
            "errors": {k: m.get("error_count") for k, m in final.items()},
            "worker": {"cpu_percent_of_one_core": round((cpu1 - cpu0) / (t1 - t0) * 100, 1),
                       **rss_report(rss.samples[mark:end_mark], t0, seconds)},
            "series": series,
        }


async def sample_series(api: Api, jobs: dict[str, RunningJob], rss: RssSampler,
                        offered: Offered, producer: asyncio.Task[None], t0: float,
                        seconds: float, preloaded: int) -> list[dict[str, Any]]:
    """A coarse view while the producer runs: RSS, produced and the worst lag, every step."""
    step = max(1.0, seconds / SERIES_POINTS)
    series: list[dict[str, Any]] = []
    next_at = t0
    while not producer.done():
        if time.monotonic() >= next_at:
            try:
                now: dict[str, int] | None = await counts(api, jobs)
            except RuntimeError:  # a slow metrics read only costs this point its lag
                now = None
            sent = preloaded + offered.sent  # after the read: the lag is never understated
            series.append({"t_s": round(time.monotonic() - t0), "rss_mb": _mb(rss.samples[-1][1]),
                           "produced": offered.sent,
                           "max_lag": max(sent - v for v in now.values()) if now else None})
            next_at += step
        await asyncio.sleep(0.2)
    return series


def _mb(rss: int) -> float:
    return round(rss / 2**20, 1)


def rss_report(samples: list[tuple[float, int]], t0: float, seconds: float) -> dict[str, Any]:
    """RSS after warm-up (10% of the run, at most 60 s), at the end and at peak, and the drift
    between the first two; flat is within ±5%."""
    if not samples:
        raise RuntimeError("no RSS samples taken during the soak")
    warm_at = t0 + min(seconds * 0.1, 60.0)
    warm = next((r for t, r in samples if t >= warm_at), samples[-1][1])
    end = samples[-1][1]
    drift = (end - warm) / warm * 100
    return {"warm_rss_mb": _mb(warm), "warm_at_s": round(warm_at - t0, 1),
            "end_rss_mb": _mb(end), "peak_rss_mb": _mb(max(r for _, r in samples)),
            "start_rss_mb": _mb(samples[0][1]), "drift_percent": round(drift, 2),
            "flat": abs(drift) <= FLAT_PERCENT}


def run_soak(args: Any) -> dict[str, Any]:
    seconds = float(getattr(args, "seconds", 600.0))
    rate = getattr(args, "rate", None)
    peak_events = int(getattr(args, "peak_events", PEAK_EVENTS))
    with bench_env() as benv, worker(benv) as (proc, port), \
            RssSampler(proc.pid, interval=1.0) as rss:
        return dict(run_async(soak(benv, proc, port, rss, seconds, rate, peak_events,
                                   args.payload_bytes)))
