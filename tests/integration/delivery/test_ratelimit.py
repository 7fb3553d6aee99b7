"""One GCRA rate-limiter suite, run against the in-memory and the Redis implementation."""

from __future__ import annotations

import asyncio

import pytest

from esb.delivery.ratelimit import RateLimit, RateLimiter

EP = "https://hooks.example.com:443"  # limiter default: 10/s, burst 5


async def test_burst_then_steady_rate(limiter: RateLimiter, clock) -> None:
    decisions = [await limiter.acquire(EP) for _ in range(5)]
    assert all(d.allowed for d in decisions)
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
    refused = await limiter.acquire(EP)
    assert not refused.allowed and refused.retry_after_s == pytest.approx(0.1, abs=1e-3)
    clock.advance(0.05)
    assert not (await limiter.acquire(EP)).allowed
    clock.advance(0.05)
    assert (await limiter.acquire(EP)).allowed
    assert not (await limiter.acquire(EP)).allowed


async def test_idle_time_refills_only_up_to_the_burst(limiter: RateLimiter, clock) -> None:
    for _ in range(5):
        await limiter.acquire(EP)
    clock.advance(60)
    allowed = [(await limiter.acquire(EP)).allowed for _ in range(7)]
    assert allowed == [True] * 5 + [False] * 2


async def test_cost_counts_and_too_large_cost_is_an_error(limiter: RateLimiter) -> None:
    assert (await limiter.acquire(EP, cost=3)).remaining == 2
    refused = await limiter.acquire(EP, cost=3)
    assert not refused.allowed and refused.retry_after_s == pytest.approx(0.1, abs=1e-3)
    assert (await limiter.acquire(EP, cost=2)).allowed
    with pytest.raises(ValueError):
        await limiter.acquire(EP, cost=6)


async def test_refusals_do_not_consume_capacity(limiter: RateLimiter, clock) -> None:
    for _ in range(5):
        await limiter.acquire(EP)
    for _ in range(10):
        assert not (await limiter.acquire(EP)).allowed
    clock.advance(0.1)
    assert (await limiter.acquire(EP)).allowed


async def test_endpoints_independent_override_and_reset(limiter: RateLimiter) -> None:
    for _ in range(5):
        await limiter.acquire(EP)
    assert (await limiter.acquire("https://other:443")).allowed
    strict = RateLimit(rate_per_s=1, burst=1)
    assert (await limiter.acquire("https://strict:443", limit=strict)).allowed
    refused = await limiter.acquire("https://strict:443", limit=strict)
    assert refused.retry_after_s == pytest.approx(1.0, abs=1e-3)
    await limiter.reset(EP)
    assert (await limiter.acquire(EP)).allowed


async def test_concurrent_acquires_never_exceed_the_burst(limiter: RateLimiter) -> None:
    decisions = await asyncio.gather(*(limiter.acquire(EP) for _ in range(30)))
    assert sum(d.allowed for d in decisions) == 5


async def test_replicas_share_one_budget(make_limiter) -> None:  # type: ignore[no-untyped-def]
    replica_a, replica_b = make_limiter(), make_limiter()
    for _ in range(3):
        assert (await replica_a.acquire(EP)).allowed
    assert (await replica_b.acquire(EP)).allowed
    assert (await replica_b.acquire(EP)).allowed
    assert not (await replica_a.acquire(EP)).allowed
