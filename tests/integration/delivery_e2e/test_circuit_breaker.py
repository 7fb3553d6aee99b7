"""The per-endpoint circuit breaker end to end (Redis-backed, as ``esb.delivery.breaker`` says).

A worker with a breaker that opens after 3 consecutive failures and cools down for 1.5 s, and a
receiver answering HTTP 500: after the third failure the circuit opens (the subscription status
says so) and the receiver gets nothing until the cool-down has passed; then one probe per
cool-down. Attempts refused by the open circuit are parked, not counted against the retry
budget, so once the receiver recovers every acknowledged event is delivered, none
dead-lettered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from tests.integration.delivery_e2e.conftest import (
    Receiver,
    delivery_env,
    make_stream,
    publish,
    subscribe,
)
from tests.support import Api, WorkerGroup, eventually, unique

pytestmark = [pytest.mark.integration, pytest.mark.redis]

THRESHOLD = 3
COOLDOWN_S = 1.5
PATH = "cb"


class FailingReceiver(Receiver):
    """The shared receiver plus an ``error`` mode: a plain HTTP 500."""

    async def _answer(self, request: web.Request) -> web.Response:
        if self.behaviour.get(request.match_info["path"]) == "error":
            await request.read()
            return web.Response(status=500)
        return await super()._answer(request)


@pytest.fixture
def breaker_bus(worker_group: WorkerGroup, redis_url: str) -> Iterator[tuple[WorkerGroup, int]]:
    env = {**delivery_env(redis_url),
           "ESB_DELIVERY_BREAKER_FAILURE_THRESHOLD": str(THRESHOLD),
           "ESB_DELIVERY_BREAKER_COOLDOWN_S": str(COOLDOWN_S)}
    yield worker_group, worker_group.start(**env)


async def test_breaker_opens_holds_off_the_receiver_and_delivery_resumes_without_loss(
        breaker_bus, http) -> None:
    group, port = breaker_bus
    api = Api(http, group.url(port), group.token(unique()))
    receiver = await FailingReceiver(behaviour={PATH: "error"}).start()
    try:
        await _scenario(api, receiver)
    finally:
        await receiver.stop()


async def _scenario(api: Api, receiver: FailingReceiver) -> None:
    stream = await make_stream(api)
    sub = await subscribe(api, stream, receiver.url(PATH),
                          retry_policy={"max_retries": 10, "retry_delay_ms": 200,
                                        "exponential_backoff": False})
    sub_id = sub["subscription_id"]
    # one key: one partition, attempted one after another, so the failures are consecutive
    ids = await publish(api, 6, keys=1)

    async def status() -> dict[str, Any]:
        code, body = await api.get(f"/api/v1/subscriptions/{sub_id}/status")
        assert code == 200, body
        return body  # type: ignore[no-any-return]

    async def circuit(state: str):
        body = await status()
        return body if body["circuit_state"] == state else None

    await eventually(lambda: circuit("open"), timeout=30, interval=0.05)
    # keep failing until two probes have come and gone: ~2 cool-downs
    await eventually(lambda: _hits_at_least(receiver, THRESHOLD + 2), timeout=30, interval=0.05)
    failing = list(receiver.hits)
    assert all(code == 500 for _, _, code in failing), failing
    assert not receiver.received
    times = [at for _, at, _ in failing]
    # the breaker opened on the THRESHOLD-th failure: from then on one probe per cool-down,
    # where retrying without a breaker would come back every 0.5 s tier, 6 events at a time
    gaps = [b - a for a, b in zip(times[THRESHOLD - 1:], times[THRESHOLD:], strict=False)]
    assert gaps and min(gaps) >= COOLDOWN_S, (gaps, times)
    assert await circuit("open") or await circuit("half_open")
    mid = await status()
    assert mid["events_delivered"] == 0 and mid["events_dead_lettered"] == 0, mid

    # the receiver recovers: the next probe closes the circuit and everything parked follows
    receiver.behaviour[PATH] = "ok"

    async def all_delivered():
        return set(receiver.ids(PATH)) >= set(ids) or None
    await eventually(all_delivered, timeout=30)
    recovered_at = min(r.at for r in receiver.on(PATH))
    assert recovered_at - times[-1] >= COOLDOWN_S  # the probe still honoured the cool-down
    assert await eventually(lambda: circuit("closed"), timeout=10)

    async def settled():
        body = await status()
        return body if body["events_delivered"] >= len(ids) and body["lag"] == 0 else None
    final = await eventually(settled, timeout=20)
    assert final["events_dead_lettered"] == 0, final
    counts = Counter(receiver.ids(PATH))
    assert set(counts) == set(ids) and max(counts.values()) == 1, counts
    # nothing was given up on: the refused attempts did not use up the retry budget
    code, dead = await api.get("/api/v1/dead-letters?stage=delivery&limit=100")
    assert code == 200 and not [d for d in dead["dead_letters"] if d["event_id"] in ids], dead


async def _hits_at_least(receiver: Receiver, n: int) -> bool | None:
    return len(receiver.hits) >= n or None
