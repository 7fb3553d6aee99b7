"""Fixtures for the shared suite: every store runs in memory and against Redis.

Redis is ESB_TEST_REDIS_URL or redis://127.0.0.1:6379/15. If it does not answer a PING within
a second, the Redis half of the suite is skipped with the reason; it never hangs. Every test
gets its own key prefix and its keys are deleted afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio as aioredis

from esb.delivery.breaker import BreakerConfig, CircuitBreaker, InMemoryCircuitBreaker
from esb.delivery.breaker_redis import RedisCircuitBreaker
from esb.delivery.dedup import DedupStore, InMemoryDedupStore
from esb.delivery.dedup_redis import RedisDedupStore
from esb.delivery.ratelimit import InMemoryRateLimiter, RateLimit, RateLimiter
from esb.delivery.ratelimit_redis import RedisRateLimiter

REDIS_URL = os.environ.get("ESB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
BACKENDS = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


class FakeClock:
    """Time that moves only when a test says so (unix seconds)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def redis_unreachable_reason() -> str | None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"Redis at {REDIS_URL} unreachable ({exc}); set ESB_TEST_REDIS_URL"
    finally:
        client.close()
    return None


@pytest.fixture
def key_prefix() -> str:
    return f"esbtest:{uuid.uuid4().hex}:"


@pytest.fixture
async def redis_client(redis_unreachable_reason: str | None,
                       key_prefix: str) -> AsyncIterator[aioredis.Redis]:
    if redis_unreachable_reason:
        pytest.skip(redis_unreachable_reason)
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
    try:
        yield client
        keys = [k async for k in client.scan_iter(match=f"{key_prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_breaker(backend: str, request: pytest.FixtureRequest, clock: FakeClock,
                 key_prefix: str):  # type: ignore[no-untyped-def]
    """Factory, so a test can build two breakers that share state (two replicas)."""
    client = request.getfixturevalue("redis_client") if backend == "redis" else None
    shared = InMemoryCircuitBreaker(BreakerConfig(3, 10.0), clock=clock)

    def make(config: BreakerConfig | None = None) -> CircuitBreaker:
        config = config or BreakerConfig(failure_threshold=3, cooldown_s=10.0)
        if client is None:
            return shared if config == shared.config else InMemoryCircuitBreaker(
                config, clock=clock)
        return RedisCircuitBreaker(client, config, prefix=key_prefix, clock=clock)
    return make


@pytest.fixture
def breaker(make_breaker) -> CircuitBreaker:  # type: ignore[no-untyped-def]
    return make_breaker()


@pytest.fixture
def make_limiter(backend: str, request: pytest.FixtureRequest, clock: FakeClock,
                 key_prefix: str):  # type: ignore[no-untyped-def]
    client = request.getfixturevalue("redis_client") if backend == "redis" else None
    shared = InMemoryRateLimiter(RateLimit(rate_per_s=10, burst=5), clock=clock)

    def make() -> RateLimiter:
        if client is None:
            return shared
        return RedisRateLimiter(client, RateLimit(rate_per_s=10, burst=5), prefix=key_prefix,
                                clock=clock)
    return make


@pytest.fixture
def limiter(make_limiter) -> RateLimiter:  # type: ignore[no-untyped-def]
    return make_limiter()


@pytest.fixture
def make_dedup(backend: str, request: pytest.FixtureRequest,
               key_prefix: str):  # type: ignore[no-untyped-def]
    """Dedup expiry is Redis' own TTL, so these stores use real time, not the fake clock."""
    client = request.getfixturevalue("redis_client") if backend == "redis" else None
    shared: dict[float, DedupStore] = {}

    def make(delivered_ttl_s: float = 3600.0) -> DedupStore:
        if client is None:
            return shared.setdefault(delivered_ttl_s,
                                     InMemoryDedupStore(delivered_ttl_s=delivered_ttl_s))
        return RedisDedupStore(client, prefix=key_prefix, delivered_ttl_s=delivered_ttl_s)
    return make


@pytest.fixture
def dedup(make_dedup) -> DedupStore:  # type: ignore[no-untyped-def]
    return make_dedup()
