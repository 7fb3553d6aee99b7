"""Breakers and rate limits are per (tenant, endpoint): tenants sharing a receiver URL are isolated.

A real :class:`Deliverer` posts to a real loopback receiver, with each store in memory and in
Redis. Tenant ``acme`` trips the breaker (or spends the rate budget) of a URL; tenant ``globex``
posting to the very same URL must still be let through, while ``acme`` stays gated.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from esb.delivery.breaker import BreakerConfig, CircuitBreaker, CircuitState, InMemoryCircuitBreaker
from esb.delivery.cloudevents_http import OutboundEvent
from esb.delivery.dedup import InMemoryDedupStore
from esb.delivery.deliverer import Attempted, Deliverer
from esb.delivery.endpoints import limit_scope
from esb.delivery.http_client import WebhookClient
from esb.delivery.ratelimit import InMemoryRateLimiter, RateLimit, RateLimiter
from esb.delivery.signing import SigningKeys, WebhookSecret
from esb.delivery.ssrf import SsrfGuard
from tests.integration.delivery_e2e.conftest import Receiver

pytestmark = pytest.mark.integration

FAILING, SHARED = "fail", "shared"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """The e2e suite's receiver: ``/fail`` answers 503, anything else 204."""
    rec = await Receiver(behaviour={FAILING: "down"}).start()
    try:
        yield rec
    finally:
        await rec.stop()


@pytest.fixture
async def make_deliverer() -> AsyncIterator[Callable[[CircuitBreaker, RateLimiter], Deliverer]]:
    client = WebhookClient()

    def make(breaker: CircuitBreaker, limiter: RateLimiter) -> Deliverer:
        return Deliverer(client, SsrfGuard(allow_cidrs=["127.0.0.0/8"]), breaker, limiter,
                         InMemoryDedupStore(), max_inline_rate_wait_s=0.0)

    try:
        yield make
    finally:
        await client.close()


def _hits(receiver: Receiver, path: str) -> int:
    return sum(1 for hit_path, _, _ in receiver.hits if hit_path == path)


_KEYS = SigningKeys(WebhookSecret.generate())
_sent = 0


async def _attempt(deliverer: Deliverer, tenant: str, url: str) -> Attempted:
    global _sent
    _sent += 1
    event = OutboundEvent({"specversion": "1.0", "id": f"evt_{_sent}", "source": "orders",
                           "type": "order.created", "tenantid": tenant}, b"{}")
    return await deliverer.attempt(tenant=tenant, subscription_id=f"sub_{tenant}", url=url,
                                   keys=_KEYS, events=[event], batched=False, timeout_s=2.0,
                                   exactly_once=False)


def test_scopes_differ_per_tenant_and_cannot_be_forged() -> None:
    url = "https://Hooks.Example.com/a"
    assert limit_scope("acme", url) == limit_scope("acme", "https://hooks.example.com:443/b")
    assert limit_scope("acme", url) != limit_scope("globex", url)
    assert limit_scope("a|https://x", "https://y") != limit_scope("a", "https://x")
    with pytest.raises(ValueError):
        limit_scope("", url)


async def test_one_tenants_failures_do_not_open_anothers_circuit(
        make_breaker: Any, make_deliverer: Any, receiver: Receiver) -> None:
    breaker: CircuitBreaker = make_breaker()
    deliverer = make_deliverer(breaker, InMemoryRateLimiter(RateLimit(1000, 1000)))
    # both tenants call one receiver origin; acme's path fails, globex's does not
    failing, shared = receiver.url(FAILING), receiver.url(SHARED)
    for _ in range(breaker.config.failure_threshold):
        assert (await _attempt(deliverer, "acme", failing)).status_code == 503
    assert await deliverer.circuit_state(failing, "acme") is CircuitState.OPEN
    gated = await _attempt(deliverer, "acme", shared)
    assert gated.gated and gated.result.reason == "circuit open"

    assert await deliverer.circuit_state(shared, "globex") is CircuitState.CLOSED
    passed = await _attempt(deliverer, "globex", shared)
    assert not passed.gated and passed.status_code == 204
    assert _hits(receiver, SHARED) == 1  # only globex's request reached the receiver


async def test_one_tenants_flood_does_not_spend_anothers_rate_budget(
        make_limiter: Any, make_deliverer: Any, receiver: Receiver) -> None:
    limiter: RateLimiter = make_limiter()  # burst 5, then 10/s on a frozen clock
    deliverer = make_deliverer(InMemoryCircuitBreaker(BreakerConfig(1000, 1.0)), limiter)
    url = receiver.url(SHARED)
    for _ in range(limiter.default.burst):
        assert not (await _attempt(deliverer, "acme", url)).gated
    flooded = await _attempt(deliverer, "acme", url)
    assert flooded.gated and flooded.result.reason == "rate limited"

    for _ in range(limiter.default.burst):
        assert not (await _attempt(deliverer, "globex", url)).gated
    assert _hits(receiver, SHARED) == 2 * limiter.default.burst
