"""``/ws/monitoring`` (seed 001): live throughput, latency, error rate and lag of the caller's
streams, pushed every second after a ``{"type": "subscribe", ...}`` request.

Auth and the per-tenant WebSocket slots are the live tail's (token header or ``?access_token=``,
``ESB_MAX_WS_PER_TENANT``). A stream the tenant does not own is an error message, never data. The
figures are read from this worker's metrics registry, so a push costs no broker round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiohttp import WSMsgType, web

from esb.authz import Permission
from esb.errors import InvalidRequest, NotFound, OutOfScope
from esb.monitoring.protocol import Subscribe, error_message, parse_subscribe, push, resolve_streams
from esb.monitoring.snapshot import METRIC_NAMES, StreamTotals, rates, read_totals
from esb.views.http import principal

_CLOSING = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


class _Watch:
    """One connection's subscription and the totals of its previous push."""

    def __init__(self, tenant: str, request: Subscribe, names: dict[str, str]) -> None:
        self.tenant = tenant
        self.request = request
        self.names = names  # requested ref -> stream name
        self.at = time.monotonic()
        self.before = self._read()

    def _read(self) -> dict[str, StreamTotals]:
        return read_totals(self.tenant, self.names.values())

    def tick(self, interval_s: float) -> dict[str, Any]:
        now, after = time.monotonic(), self._read()
        figures = {ref: rates(self.before[name], after[name], now - self.at)
                   for ref, name in self.names.items()}
        self.before, self.at = after, now
        return push(figures, self.request.metrics, interval_s)


def make_handler(app: Any) -> Any:
    async def monitoring(request: web.Request) -> web.StreamResponse:
        tenant = principal(request).tenant
        with app.runtime.ws_slots.hold(tenant):  # 429 before the upgrade when none is free
            return await _serve(app, request, tenant)

    return monitoring


async def _serve(app: Any, request: web.Request, tenant: str) -> web.WebSocketResponse:
    interval = app.monitoring.push_interval_s
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    await ws.send_json({"message_type": "connected", "metrics": list(METRIC_NAMES),
                        "interval_s": interval})
    watch: _Watch | None = None
    deadline = time.monotonic() + interval
    reader = asyncio.ensure_future(ws.receive())  # kept across pushes: never cancel a read
    try:
        while not ws.closed:
            await asyncio.wait({reader}, timeout=max(0.0, deadline - time.monotonic()))
            if not reader.done():
                if watch is not None:
                    await ws.send_json(watch.tick(interval))
                deadline = time.monotonic() + interval
                continue
            msg = reader.result()
            if msg.type in _CLOSING:
                break
            reader = asyncio.ensure_future(ws.receive())
            watch = await _answer(app, request, ws, tenant, msg, watch)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        with contextlib.suppress(Exception):
            await ws.close()
    return ws


async def _answer(app: Any, request: web.Request, ws: web.WebSocketResponse, tenant: str,
                  msg: Any, watch: _Watch | None) -> _Watch | None:
    """A client message: a subscribe replaces the watch; anything else is an error message
    and the previous subscription stays."""
    try:
        if msg.type is not WSMsgType.TEXT:
            raise InvalidRequest("send JSON text messages")
        wanted = parse_subscribe(msg.data)
        names = resolve_streams(app.runtime.streams.directory, tenant, wanted.streams,
                                scope=principal(request).narrowing(Permission.READ))
    except (InvalidRequest, NotFound, OutOfScope) as exc:
        await ws.send_json(error_message(exc))
        return watch
    await ws.send_json({"message_type": "subscribed", "streams": list(wanted.streams),
                        "metrics": list(wanted.metrics)})
    return _Watch(tenant, wanted, names)
