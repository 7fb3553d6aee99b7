"""``/ws/subscriptions/{id}``: a subscription without a webhook is a WebSocket consumer that gets
the stream's events passing its patterns and CEL filter; a webhook subscription streams its
delivery updates."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.integration.delivery_e2e.conftest import make_stream, publish, subscribe
from tests.support import unique

pytestmark = [pytest.mark.integration, pytest.mark.redis]


async def _collect(ws: Any, want: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(messages) < want:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            break
        try:
            message = await ws.receive_json(timeout=remaining)
        except TimeoutError:
            break
        if message.get("type") != "subscribed":
            messages.append(message)
    return messages


async def test_websocket_consumer_gets_exactly_the_matching_events(dapi, delivery_bus, http
                                                                   ) -> None:
    group, port = delivery_bus
    api = dapi(unique())
    stream = await make_stream(api)
    status, created = await api.post("/api/v1/subscriptions", {
        "subscription_name": unique("ws"), "stream_id": stream, "consumer_group_id": "ws",
        "event_type_patterns": ["order.*"], "filter_expression": "payload.n >= 2"})
    assert status == 201, created
    url = (f"{group.url(port)}/ws/subscriptions/{created['subscription_id']}"
           f"?access_token={api.token}")
    async with http.ws_connect(url) as ws:
        hello = await ws.receive_json(timeout=10)
        assert hello["type"] == "subscribed" and hello["mode"] == "events"
        await publish(api, 4, stream_id=stream)                       # n = 0..3
        await publish(api, 3, "invoice.created", stream_id=stream)    # filtered by pattern
        messages = await _collect(ws, want=2)
        assert sorted(m["event"]["data"]["n"] for m in messages) == [2, 3]
        assert not await _collect(ws, want=1, timeout=1.5)


async def test_webhook_subscription_streams_delivery_updates(dapi, delivery_bus, receiver, http
                                                             ) -> None:
    group, port = delivery_bus
    api = dapi(unique())
    stream = await make_stream(api)
    sub = await subscribe(api, stream, receiver.url("ok"))
    url = (f"{group.url(port)}/ws/subscriptions/{sub['subscription_id']}"
           f"?access_token={api.token}")
    async with http.ws_connect(url) as ws:
        hello = await ws.receive_json(timeout=10)
        assert hello["mode"] == "deliveries"
        ids = await publish(api, 3, stream_id=stream)
        updates = await _collect(ws, want=3, timeout=60)
    assert len(updates) >= 3
    assert {i for u in updates for i in u.get("event_ids", [u.get("event_id")])} >= set(ids)
