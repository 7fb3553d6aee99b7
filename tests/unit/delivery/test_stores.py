"""What only one implementation has: in-memory bounds, Redis error translation."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from esb.delivery.breaker import BreakerConfig
from esb.delivery.breaker_redis import RedisCircuitBreaker
from esb.delivery.dedup import ClaimStatus, InMemoryDedupStore
from esb.delivery.dedup_redis import RedisDedupStore
from esb.delivery.ratelimit import InMemoryRateLimiter, RateLimit
from esb.delivery.ratelimit_redis import RedisRateLimiter
from esb.errors import StorageUnavailable


async def test_in_memory_dedup_is_a_bounded_lru() -> None:
    store = InMemoryDedupStore(max_entries=2)
    await store.mark_delivered("s", "old")
    await store.mark_delivered("s", "recent")
    assert await store.is_delivered("s", "old")  # touching "old" makes "recent" the LRU
    await store.mark_delivered("s", "new")
    assert await store.is_delivered("s", "old") and await store.is_delivered("s", "new")
    assert not await store.is_delivered("s", "recent")
    assert (await store.claim("s", "recent")).status is ClaimStatus.CLAIMED


async def test_in_memory_limiter_sweeps_idle_endpoints() -> None:
    now = [0.0]
    limiter = InMemoryRateLimiter(RateLimit(10, 1), clock=lambda: now[0])
    for n in range(limiter._SWEEP_EVERY - 1):
        await limiter.acquire(f"ep{n}")
    now[0] = 100.0
    await limiter.acquire("last")
    assert set(limiter._tats) == {"last"}


def test_invalid_configs() -> None:
    with pytest.raises(ValueError):
        BreakerConfig(failure_threshold=0)
    with pytest.raises(ValueError):
        RateLimit(rate_per_s=0)
    with pytest.raises(ValueError):
        InMemoryDedupStore(max_entries=0)


async def test_redis_down_is_storage_unavailable_not_a_hang() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5,
                            socket_timeout=0.5, retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises(StorageUnavailable):
            await RedisCircuitBreaker(client).acquire("https://x:443")
        with pytest.raises(StorageUnavailable):
            await RedisCircuitBreaker(client).state("https://x:443")
        with pytest.raises(StorageUnavailable):
            await RedisRateLimiter(client).acquire("https://x:443")
        with pytest.raises(StorageUnavailable):
            await RedisDedupStore(client).claim("s", "e")
        with pytest.raises(StorageUnavailable):
            await RedisDedupStore(client).is_delivered("s", "e")
    finally:
        await client.aclose()
