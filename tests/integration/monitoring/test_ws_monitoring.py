"""``/ws/monitoring`` with a real WebSocket client: the seed's subscribe protocol, pushes every
second whose numbers move after publishing, and tenant isolation (another tenant's stream is an
error message, never data)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from tests.integration.delivery_e2e.conftest import make_stream
from tests.support import Api, unique

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def _ws_url(api: Api) -> str:
    return api.base.replace("http://", "ws://") + "/ws/monitoring"


async def _next(ws: aiohttp.ClientWebSocketResponse, kind: str, timeout: float = 10
                ) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        message = await ws.receive_json(timeout=max(0.1, deadline - time.monotonic()))
        if message["message_type"] == kind:
            return message  # type: ignore[no-any-return]


async def test_pushes_move_after_publishing(api_for: Any, http: Any) -> None:
    api = api_for(unique())
    stream = await make_stream(api)
    async with http.ws_connect(f"{_ws_url(api)}?access_token={api.token}") as ws:
        hello = await ws.receive_json(timeout=10)
        assert hello["message_type"] == "connected" and hello["interval_s"] == 1.0
        await ws.send_json({"type": "subscribe", "streams": [stream],
                            "metrics": ["throughput", "latency", "error_rate", "lag"]})
        assert (await _next(ws, "subscribed"))["streams"] == [stream]
        first = await _next(ws, "monitoring")
        assert first["data"][stream] == {"throughput": 0.0, "latency": 0.0, "error_rate": 0.0,
                                         "lag": 0.0, "lag_seconds": 0.0}
        events = [{"event_type": "order.created", "source_capability": "orders",
                   "stream_id": stream, "payload": {"i": i}} for i in range(40)]
        status, _ = await api.post("/api/v1/events/batch", {"events": events})
        assert status == 201
        started = time.monotonic()
        moved: list[dict[str, Any]] = []
        while time.monotonic() - started < 5:
            push = await _next(ws, "monitoring", timeout=3)
            figures = push["data"][stream]
            if figures["throughput"] > 0:
                moved.append(figures)
                break
        assert moved, "throughput never moved"
        assert moved[0]["throughput"] >= 10 and moved[0]["latency"] > 0  # 40 events in ~1 s
        assert moved[0]["error_rate"] == 0.0
        quiet = await _next(ws, "monitoring", timeout=3)  # nothing published since
        assert quiet["data"][stream]["throughput"] == 0.0


async def test_only_requested_metrics_and_bad_requests_are_errors(api_for: Any,
                                                                  http: Any) -> None:
    api = api_for(unique())
    stream = await make_stream(api)
    async with http.ws_connect(_ws_url(api), headers=api.headers()) as ws:
        await _next(ws, "connected")
        await ws.send_str("not json")
        error = await _next(ws, "error")
        assert error["code"] == "invalid_request"
        await ws.send_json({"type": "subscribe", "streams": [stream], "metrics": ["cpu"]})
        assert "cpu" in (await _next(ws, "error"))["detail"]
        await ws.send_json({"type": "subscribe", "streams": [f"str_{stream}"],
                            "metrics": ["throughput"]})
        await _next(ws, "subscribed")
        push = await _next(ws, "monitoring")
        assert push["data"] == {f"str_{stream}": {"throughput": 0.0}}


async def test_another_tenants_stream_is_refused(api_for: Any, http: Any) -> None:
    owner, intruder = api_for(unique()), api_for(unique())
    stream = await make_stream(owner)
    async with http.ws_connect(_ws_url(intruder), headers=intruder.headers()) as ws:
        await _next(ws, "connected")
        await ws.send_json({"type": "subscribe", "streams": [stream]})
        error = await _next(ws, "error")
        assert error["code"] == "not_found" and "data" not in error
        with pytest.raises(asyncio.TimeoutError):
            await ws.receive_json(timeout=2.5)  # no subscription, so no pushes at all
    async with http.get(_ws_url(owner).replace("ws://", "http://")) as resp:
        assert resp.status == 401  # no token: refused before the upgrade
