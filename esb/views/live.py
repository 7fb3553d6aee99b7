"""Live tail: ``/ws/events/{stream_name}`` streams a tenant's events as they are routed.

Each connection reads the stream's lane topics from their end with a group-less consumer, so a
viewer never affects committed offsets. ``?event_type=user.*`` filters by type (glob) using the
headers only; the payload is decoded only for events that are sent. The token comes from the
``Authorization`` header or, for browsers, ``?access_token=``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from aiokafka import AIOKafkaConsumer

from esb.envelope import Envelope, attributes_from_kafka_headers
from esb.errors import InvalidRequest, NotFound, redact
from esb.globs import PatternError, compile_globs
from esb.kafka import topic_partitions
from esb.kafka_security import kafka_client_options
from esb.tenancy import TenantSlots
from esb.views.http import principal

log = logging.getLogger(__name__)


Render = Callable[[Any], dict[str, Any] | None]
_CLOSING = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


async def tail_to_websocket(request: web.Request, kafka: Mapping[str, Any],
                            topics: Iterable[str], hello: dict[str, Any], render: Render,
                            slots: TenantSlots | None = None) -> web.WebSocketResponse:
    """Serve a WebSocket streaming the records ``topics`` receive from now on.

    A group-less consumer reads from the end, so a viewer never moves committed offsets; each
    record becomes ``render(record)`` (None skips it). Shared by every live endpoint. With
    ``slots``, the caller's tenant must have a free slot before the upgrade (else 429).
    """
    if slots is None:
        return await _tail(request, kafka, topics, hello, render)
    with slots.hold(principal(request).tenant):
        return await _tail(request, kafka, topics, hello, render)


async def _tail(request: web.Request, kafka: Mapping[str, Any], topics: Iterable[str],
                hello: dict[str, Any], render: Render) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    consumer = AIOKafkaConsumer(**kafka, group_id=None,
                                enable_auto_commit=False, fetch_max_wait_ms=200)
    try:
        await consumer.start()
    except Exception as exc:  # the upgrade is done: no HTTP status any more, close with 1011
        log.warning("live tail could not reach Kafka: %s", redact(f"{type(exc).__name__}: {exc}"))
        with contextlib.suppress(Exception):
            await consumer.stop()
        await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"broker unavailable")
        return ws
    try:
        tps = await topic_partitions(consumer, topics)
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:  # resolve positions now so nothing arriving after this point is missed
            await consumer.position(tp)
        # Tansu answers end offsets counting record batches, not records, so seek_to_end can
        # land before the true end there: also drop records older than the connection
        since_ms = int(time.time() * 1000) - 1000
        await ws.send_json(hello)
        reader = asyncio.ensure_future(ws.receive())
        while not ws.closed:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for rec in records:
                    if rec.timestamp < since_ms:
                        continue
                    try:
                        message = render(rec)
                    except Exception as exc:  # a record no viewer can be shown: skip it
                        log.info("live tail skipped %s[%d]@%d: %s", rec.topic, rec.partition,
                                 rec.offset, type(exc).__name__)
                        continue
                    if message is not None:
                        await ws.send_json(message)
            if reader.done():
                if reader.result().type in _CLOSING:
                    break
                reader = asyncio.ensure_future(ws.receive())
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    except Exception as exc:  # after the upgrade a failure can only close the socket
        log.warning("live tail failed: %s", redact(f"{type(exc).__name__}: {exc}")[:500])
        with contextlib.suppress(Exception):
            await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"tail failed")
    finally:
        await consumer.stop()
        await ws.close()
    return ws


def make_handler(app: Any) -> Any:
    async def live_events(request: web.Request) -> web.StreamResponse:
        who = principal(request)
        stream = app.runtime.streams.directory.get(who.tenant, request.match_info["stream_name"])
        if stream is None:
            raise NotFound(f"stream {request.match_info['stream_name']!r} not found")
        pattern = request.query.get("event_type") or request.query.get("pattern") or "*"
        try:
            matches = compile_globs((pattern,))
        except PatternError as exc:
            raise InvalidRequest(str(exc), field="event_type") from None

        def render(rec: Any) -> dict[str, Any] | None:
            attrs, ctype = attributes_from_kafka_headers(rec.headers)
            if not matches(attrs.get("type", "")):
                return None
            event = Envelope(attrs, rec.value or b"", ctype).to_structured()
            return {"type": "event", "partition": rec.partition, "offset": rec.offset,
                    "event": event}

        return await tail_to_websocket(
            request, kafka_client_options(app.runtime.settings), stream["topics"].values(),
            {"type": "subscribed", "stream": stream["stream_name"], "event_type": pattern}, render,
            app.runtime.ws_slots)

    return live_events
