"""Rate limit per (tenant, webhook endpoint): GCRA (the generic cell rate algorithm).

The key is opaque here; the deliverer passes :func:`esb.delivery.endpoints.limit_scope`, so one
tenant flooding a receiver never spends another tenant's budget for the same URL.

GCRA is a token bucket that stores one number per key, the "theoretical arrival time" (TAT),
so the Redis version is a single GET/SET in a Lua script and needs no refill loop. With
``rate_per_s`` = r and ``burst`` = b: b requests may go at once, then one every 1/r seconds.
A refused request learns ``retry_after_s``, the exact wait until it would be allowed.

Two implementations behind :class:`RateLimiter`: :class:`InMemoryRateLimiter` (one node) and
:class:`esb.delivery.ratelimit_redis.RedisRateLimiter` (shared by all replicas).
"""

from __future__ import annotations

import abc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["InMemoryRateLimiter", "RateDecision", "RateLimit", "RateLimiter"]

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RateLimit:
    rate_per_s: float = 50.0
    burst: int = 50

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0 or self.burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")

    @property
    def interval_s(self) -> float:
        return 1.0 / self.rate_per_s


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    retry_after_s: float = 0.0
    remaining: int = 0  # requests that could still go right now


def gcra(tat: float | None, now: float, limit: RateLimit, cost: int
         ) -> tuple[RateDecision, float | None]:
    """One GCRA step: the decision and the new TAT to store (None: leave it unchanged)."""
    interval = limit.interval_s
    new_tat = max(tat if tat is not None else now, now) + interval * cost
    allow_at = new_tat - interval * limit.burst
    if now < allow_at:
        return RateDecision(False, allow_at - now, 0), None
    remaining = min(limit.burst, math.floor((now - allow_at) / interval + 1e-9))
    return RateDecision(True, 0.0, remaining), new_tat


class RateLimiter(abc.ABC):
    """Per-scope limiter (tenant + endpoint); ``limit`` overrides the default for one call."""

    def __init__(self, default: RateLimit | None = None, *, clock: Clock = time.time) -> None:
        self.default = default or RateLimit()
        self._clock = clock

    def _checked(self, limit: RateLimit | None, cost: int) -> RateLimit:
        chosen = limit or self.default
        if cost < 1 or cost > chosen.burst:
            raise ValueError(f"cost must be between 1 and the burst ({chosen.burst})")
        return chosen

    @abc.abstractmethod
    async def acquire(self, endpoint: str, *, cost: int = 1,
                      limit: RateLimit | None = None) -> RateDecision:
        """Take ``cost`` requests' worth of capacity now, or learn how long to wait."""

    @abc.abstractmethod
    async def reset(self, endpoint: str) -> None:
        """Forget the endpoint's usage."""


class InMemoryRateLimiter(RateLimiter):
    """Single-process limiter; stale keys (TAT in the past) are swept as it goes."""

    _SWEEP_EVERY = 1024

    def __init__(self, default: RateLimit | None = None, *, clock: Clock = time.time) -> None:
        super().__init__(default, clock=clock)
        self._tats: dict[str, float] = {}
        self._calls = 0

    async def acquire(self, endpoint: str, *, cost: int = 1,
                      limit: RateLimit | None = None) -> RateDecision:
        chosen = self._checked(limit, cost)
        now = self._clock()
        decision, new_tat = gcra(self._tats.get(endpoint), now, chosen, cost)
        if new_tat is not None:
            self._tats[endpoint] = new_tat
        self._calls += 1
        if self._calls % self._SWEEP_EVERY == 0:
            self._tats = {k: v for k, v in self._tats.items() if v > now}
        return decision

    async def reset(self, endpoint: str) -> None:
        self._tats.pop(endpoint, None)
