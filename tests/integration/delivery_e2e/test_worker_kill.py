"""Delivery modes across a SIGKILL of the worker mid-stream (a fresh worker takes over).

at-least-once: every event arrives (duplicates allowed, same webhook-id).
at-most-once: no event arrives twice (some may be lost: that is the mode's contract).
exactly-once: every event arrives and the receiver sees each event id once (stable ids plus the
Redis dedup store; the only residual window is a kill between the receiver's 2xx and the
dedup mark, documented in esb.delivery.dedup).
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tests.integration.delivery_e2e.conftest import delivery_env, make_stream, publish, subscribe
from tests.support import Api, eventually, unique

pytestmark = pytest.mark.integration


async def test_modes_hold_across_a_worker_kill(worker_group, redis_url, receiver, http) -> None:
    # start/kill block, and the receiver shares this event loop: run them in a thread, or the
    # receiver stalls, deliveries time out after it processed them, and duplicates are ours
    port = await asyncio.to_thread(worker_group.start, **delivery_env(redis_url))
    tenant = unique()
    api = Api(http, worker_group.url(port), worker_group.token(tenant))
    stream = await make_stream(api)
    for path in ("alo", "amo", "eo"):
        receiver.behaviour[path] = "delay:0.03"
    mode = {"alo": "at-least-once", "amo": "at_most_once", "eo": "EXACTLY_ONCE"}
    for path, delivery_mode in mode.items():
        await subscribe(api, stream, receiver.url(path), delivery_mode=delivery_mode)
    ids = await publish(api, 150, keys=30)

    async def midway():
        return all(len(receiver.on(p)) >= 10 for p in mode) or None
    await eventually(midway, timeout=90, interval=0.05)
    assert len(receiver.on("alo")) < 150, "the kill should land mid-stream"
    await asyncio.to_thread(worker_group.kill, port)
    port2 = await asyncio.to_thread(worker_group.start, **delivery_env(redis_url))
    assert port2

    async def complete(path: str):
        return set(receiver.ids(path)) >= set(ids) or None
    await eventually(lambda: complete("alo"), timeout=120)
    await eventually(lambda: complete("eo"), timeout=120)
    eo = Counter(receiver.ids("eo"))
    assert max(eo.values()) == 1, [i for i, n in eo.items() if n > 1]
    amo = Counter(receiver.ids("amo"))
    assert max(amo.values()) == 1
    assert set(amo) <= set(ids)
