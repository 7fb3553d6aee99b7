"""One circuit-breaker suite, run against the in-memory and the Redis implementation."""

from __future__ import annotations

import asyncio

import pytest

from esb.delivery.breaker import BreakerConfig, CircuitBreaker, CircuitState

EP = "https://hooks.example.com:443"


async def trip(breaker: CircuitBreaker, endpoint: str = EP) -> None:
    for _ in range(breaker.config.failure_threshold):
        await breaker.record_failure(endpoint)


async def test_closed_until_threshold_then_open(breaker: CircuitBreaker, clock) -> None:
    assert (await breaker.acquire(EP)).allowed
    assert await breaker.record_failure(EP) is CircuitState.CLOSED
    assert await breaker.record_failure(EP) is CircuitState.CLOSED
    assert await breaker.record_failure(EP) is CircuitState.OPEN
    clock.advance(4)
    permit = await breaker.acquire(EP)
    assert not permit.allowed and permit.state is CircuitState.OPEN
    assert permit.retry_after_s == pytest.approx(6.0)
    assert await breaker.state(EP) is CircuitState.OPEN


async def test_success_resets_consecutive_failures(breaker: CircuitBreaker) -> None:
    await breaker.record_failure(EP)
    await breaker.record_failure(EP)
    assert await breaker.record_success(EP) is CircuitState.CLOSED
    await breaker.record_failure(EP)
    await breaker.record_failure(EP)
    assert await breaker.state(EP) is CircuitState.CLOSED


async def test_half_open_admits_one_probe_and_success_closes(breaker: CircuitBreaker,
                                                              clock) -> None:
    await trip(breaker)
    clock.advance(10)
    assert await breaker.state(EP) is CircuitState.HALF_OPEN
    probe = await breaker.acquire(EP)
    assert probe.allowed and probe.state is CircuitState.HALF_OPEN
    second = await breaker.acquire(EP)
    assert not second.allowed and second.state is CircuitState.HALF_OPEN
    assert await breaker.record_success(EP) is CircuitState.CLOSED
    assert (await breaker.acquire(EP)).allowed
    assert await breaker.state(EP) is CircuitState.CLOSED


async def test_failed_probe_reopens_for_a_full_cooldown(breaker: CircuitBreaker, clock) -> None:
    await trip(breaker)
    clock.advance(10)
    assert (await breaker.acquire(EP)).allowed
    clock.advance(2)
    assert await breaker.record_failure(EP) is CircuitState.OPEN
    clock.advance(9)
    permit = await breaker.acquire(EP)
    assert not permit.allowed and permit.retry_after_s == pytest.approx(1.0)
    clock.advance(1)
    assert (await breaker.acquire(EP)).allowed


async def test_lost_probe_lease_expires(breaker: CircuitBreaker, clock) -> None:
    await trip(breaker)
    clock.advance(10)
    assert (await breaker.acquire(EP)).allowed  # this probe's worker dies silently
    clock.advance(5)
    assert not (await breaker.acquire(EP)).allowed
    clock.advance(5)
    assert (await breaker.acquire(EP)).allowed


async def test_results_arriving_while_open_are_ignored(breaker: CircuitBreaker, clock) -> None:
    await trip(breaker)
    clock.advance(3)
    assert await breaker.record_success(EP) is CircuitState.OPEN
    assert await breaker.record_failure(EP) is CircuitState.OPEN
    clock.advance(7)  # the late failure did not restart the cool-down
    assert (await breaker.acquire(EP)).allowed


async def test_endpoints_are_independent_and_reset_forgets(breaker: CircuitBreaker) -> None:
    await trip(breaker)
    other = "https://other.example.com:443"
    assert (await breaker.acquire(other)).allowed
    assert await breaker.state(other) is CircuitState.CLOSED
    await breaker.reset(EP)
    assert (await breaker.acquire(EP)).allowed


async def test_concurrent_acquire_in_half_open_grants_exactly_one(breaker: CircuitBreaker,
                                                                  clock) -> None:
    await trip(breaker)
    clock.advance(10)
    permits = await asyncio.gather(*(breaker.acquire(EP) for _ in range(20)))
    assert sum(p.allowed for p in permits) == 1


async def test_replicas_share_state(make_breaker, clock) -> None:  # type: ignore[no-untyped-def]
    replica_a, replica_b = make_breaker(), make_breaker()
    await replica_a.record_failure(EP)
    await replica_b.record_failure(EP)
    await replica_a.record_failure(EP)
    assert not (await replica_b.acquire(EP)).allowed
    clock.advance(10)
    assert (await replica_a.acquire(EP)).allowed
    assert not (await replica_b.acquire(EP)).allowed  # the probe belongs to replica A


async def test_threshold_of_one(make_breaker) -> None:  # type: ignore[no-untyped-def]
    breaker = make_breaker(BreakerConfig(failure_threshold=1, cooldown_s=1))
    assert await breaker.record_failure(EP) is CircuitState.OPEN
