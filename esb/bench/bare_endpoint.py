"""The ceiling for HTTP publishing on this machine: a bare aiohttp + aiokafka endpoint.

``esb bench publish`` starts it as a child process (like a worker: its own interpreter, its own
core) and drives it with the same clients and bodies as the bus, so that the bus's publish path
is quoted as a ratio to "parse JSON, produce with acks=all, answer 201" in the same run
(issue 15, goal 3). It does no authentication, validation, idempotency or tenancy: that is
exactly the cost the ratio shows.

Run: ``python -m esb.bench.bare_endpoint --port P --bootstrap HOST:PORT --topic T``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer

PRODUCER: web.AppKey[AIOKafkaProducer] = web.AppKey("producer", AIOKafkaProducer)
TOPIC: web.AppKey[str] = web.AppKey("topic", str)


def _record(event: dict[str, Any]) -> tuple[bytes, bytes | None, str]:
    event_id = str(uuid.uuid4())
    key = event.get("aggregate_id")
    value = json.dumps({**event, "event_id": event_id}, separators=(",", ":")).encode()
    return value, key.encode() if isinstance(key, str) else None, event_id


async def publish_one(request: web.Request) -> web.Response:
    value, key, event_id = _record(await request.json())
    await request.app[PRODUCER].send_and_wait(request.app[TOPIC], value, key=key)
    return web.json_response({"event_id": event_id, "status": "published"}, status=201)


async def publish_batch(request: web.Request) -> web.Response:
    body = await request.json()
    producer, topic = request.app[PRODUCER], request.app[TOPIC]
    pending, ids = [], []
    for event in body["events"]:
        value, key, event_id = _record(event)
        pending.append(await producer.send(topic, value, key=key))
        ids.append(event_id)
    await asyncio.gather(*pending)
    return web.json_response({"event_ids": ids, "published": len(ids)}, status=201)


def make_app(bootstrap: str, topic: str) -> web.Application:
    app = web.Application(client_max_size=8 * 2**20)
    app[TOPIC] = topic

    async def producer_context(app: web.Application) -> Any:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                    max_batch_size=1 << 20)  # the bus's defaults
        await producer.start()
        app[PRODUCER] = producer
        yield
        await producer.stop()

    app.cleanup_ctx.append(producer_context)
    app.router.add_post("/events", publish_one)
    app.router.add_post("/events/batch", publish_batch)
    app.router.add_get("/health", health)
    return app


async def health(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    args = parser.parse_args()
    web.run_app(make_app(args.bootstrap, args.topic), host="127.0.0.1", port=args.port,
                print=None, access_log=None)


if __name__ == "__main__":
    main()
