"""``esb bench delivery``: webhook deliveries/s to a local receiver and publish→delivery latency
at a fixed offered rate, against a raw aiohttp client posting the same requests to the same
receiver in the same run (the ceiling for any HTTP delivery), plus the worker's RSS."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaProducer

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
from esb.bench.pipeline import ce_headers, make_payload, producer
from esb.embedded import free_port

TENANT = "bench"
STREAM = "orders"
PARTITIONS = 6
WORKER_ENV = {
    "ESB_DELIVERY_ALLOW_CIDRS": "127.0.0.0/8",   # the receiver is on loopback
    "ESB_DELIVERY_RATE_PER_S": "1000000",        # measure the pipeline, not the rate limit
    "ESB_DELIVERY_RATE_BURST": "1000000",
}


class Receiver:
    """Counts deliveries and when each event id arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.port = free_port()
        self.event = asyncio.Event()
        self.expect = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        event_id = request.headers.get("ce-id") or request.headers.get("webhook-id", "")
        self.arrivals.setdefault(event_id, time.perf_counter())
        if self.expect and len(self.arrivals) >= self.expect:
            self.event.set()
        return web.Response(status=204)

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


async def raw_posts(url: str, n: int, concurrency: int, body: bytes) -> dict[str, Any]:
    counter = iter(range(n))
    async with aiohttp.ClientSession() as session:
        async def client() -> None:
            for i in counter:
                async with session.post(url, data=body, headers={
                        "ce-id": f"raw-{i}", "content-type": "application/json"}) as resp:
                    await resp.read()

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"requests": n, "concurrency": concurrency, "seconds": round(elapsed, 3),
            "requests_per_s": round(n / elapsed, 1)}


async def scenario(base: str, token: str, bootstrap: str, lane_topic: str, args: Any,
                   rss: RssSampler) -> dict[str, Any]:
    receiver = Receiver()
    runner = await receiver.start()
    payload = make_payload(args.payload_bytes)
    total = min(args.events, 20_000)
    try:
        baseline = await raw_posts(receiver.url, total, PARTITIONS, payload)
        receiver.arrivals.clear()
        async with aiohttp.ClientSession() as session:
            await http_json(session, "POST", f"{base}/api/v1/subscriptions", token, {
                "subscription_name": "bench", "stream_id": STREAM,
                "consumer_group_id": "bench", "webhook_url": receiver.url,
                "delivery_mode": "at_least_once", "batch_size": 1, "webhook_timeout_ms": 5000,
                "event_type_patterns": ["order.*"]})
        await asyncio.sleep(3.0)  # the delivery consumer joins its group
        prod = producer(bootstrap)
        await prod.start()
        try:
            receiver.expect = total
            futures = [await prod.send(lane_topic, payload, key=f"ord_{i % 1000}".encode(),
                                       headers=ce_headers(i, ids.event_id()))
                       for i in range(total)]
            await asyncio.gather(*futures)
            await asyncio.wait_for(receiver.event.wait(), timeout=600)
            times = sorted(receiver.arrivals.values())
            elapsed = times[-1] - times[0]
            throughput = {"deliveries": total, "seconds": round(elapsed, 3),
                          "deliveries_per_s": round((total - 1) / elapsed, 1)}
            throughput_rss = rss.summary()

            mark = rss.mark()
            receiver.arrivals.clear()
            # one event at a time, sent at once (no linger), as the pipeline's latency phase
            await prod.stop()
            prod = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
            await prod.start()
            rate = min(args.latency_rate, 200)  # well below capacity: latency, not queueing
            count = int(rate * args.latency_seconds)
            receiver.expect, receiver.event = count, asyncio.Event()
            sent: dict[str, float] = {}
            started = time.perf_counter()
            for i in range(count):
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                event_id = ids.event_id()
                sent[event_id] = time.perf_counter()
                await prod.send(lane_topic, payload, key=f"ord_{i % 1000}".encode(),
                                headers=ce_headers(i, event_id))
            await asyncio.wait_for(receiver.event.wait(), timeout=120)
            latencies = [receiver.arrivals[e] - t for e, t in sent.items()
                         if e in receiver.arrivals]
        finally:
            await prod.stop()
    finally:
        await runner.cleanup()
    return {"baseline_raw_aiohttp_posts": baseline, "delivery": throughput,
            "ratio": round(throughput["deliveries_per_s"] / baseline["requests_per_s"], 3),
            "publish_to_delivery_latency_ms": {"offered_rate": rate, **latency_summary_ms(latencies)},
            "worker_memory": {"throughput_phase": throughput_rss,
                              "steady_rate_phase": rss.summary(mark)}}


def run_delivery(args: Any) -> dict[str, Any]:
    with bench_env() as benv, worker(benv, **WORKER_ENV) as (proc, port), \
            RssSampler(proc.pid) as rss:
        base = f"http://127.0.0.1:{port}"
        token = token_for(benv, TENANT)

        async def go() -> dict[str, Any]:
            async with aiohttp.ClientSession() as session:
                created = await http_json(session, "POST", f"{base}/api/v1/streams", token, {
                    "stream_name": STREAM, "source_capability": "bench",
                    "partitions": PARTITIONS})
            lane = created["stream"]["topics"]["NORMAL"]
            return await scenario(base, token, benv.bootstrap, lane, args, rss)

        result = run_async(go())
    return {"benchmark": "delivery", "payload_bytes": args.payload_bytes, **result,
            "subscription": {"delivery_mode": "at_least_once", "batch_size": 1, "endpoints": 1}}
