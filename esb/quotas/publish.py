"""The publish-rate budget of each tenant: events/s and payload bytes/s, both publish paths.

Built on the delivery rate limiter (:mod:`esb.delivery.ratelimit`, GCRA): in-process without
Redis, one Lua script per decision in Redis when ``ESB_REDIS_URL`` is set, so every replica
spends the same budget. A tenant's two buckets are ``quota:<tenant>:events`` and
``quota:<tenant>:bytes``; each holds ``burst_s`` seconds of its rate.

- HTTP (:meth:`PublishQuota.admit`): a request that does not fit now is refused with
  :class:`RateLimited` (429, ``Retry-After``); one that can never fit (larger than the burst) is
  413, since retrying it would not help.
- Kafka ingress (:meth:`PublishQuota.take`): how many of a partition's records may be routed
  now, and how long to wait before the rest; the router holds them (nothing is dropped).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from urllib.parse import quote

from esb.delivery.ratelimit import RateLimit, RateLimiter
from esb.errors import PayloadTooLarge, RateLimited
from esb.metrics import QUOTA_THROTTLED
from esb.quotas.limits import QuotaBook, QuotaLimits


def _bucket(rate: float, burst_s: float) -> RateLimit:
    return RateLimit(rate_per_s=rate, burst=max(1, math.ceil(rate * burst_s)))


class PublishQuota:
    """Spends a tenant's publish budget; ``limiter`` may be swapped for the Redis one at start."""

    def __init__(self, book: QuotaBook, limiter: RateLimiter) -> None:
        self.book = book
        self.limiter = limiter

    def use(self, limiter: RateLimiter) -> None:
        """Adopt another limiter (the runtime switches to Redis once it is connected)."""
        self.limiter = limiter

    def limited(self, tenant: str) -> bool:
        """Whether the tenant has a publish rate at all (unlimited costs no limiter call)."""
        limits = self.book.limits(tenant)
        return bool(limits.publish_events_per_s or limits.publish_bytes_per_s)

    async def admit(self, tenant: str, events: int, nbytes: int) -> None:
        """Spend ``events`` and ``nbytes`` now, or raise (429 with ``retry_after`` seconds)."""
        limits = self.book.limits(tenant)
        for name, cost, rate in (("publish_events_per_s", events, limits.publish_events_per_s),
                                 ("publish_bytes_per_s", nbytes, limits.publish_bytes_per_s)):
            if rate and cost > _bucket(rate, limits.burst_s).burst:
                raise PayloadTooLarge(
                    f"{cost} exceeds what quota {name} ({rate:g}/s) allows at once; send less "
                    "per request", limit=name)
        wait = await self._spend(tenant, limits, events, nbytes)
        if wait > 0:
            QUOTA_THROTTLED.labels(tenant, "http").inc()
            raise RateLimited(f"tenant publish quota exceeded; retry in {wait:.2f}s",
                              retry_after=max(1, math.ceil(wait)))

    async def take(self, tenant: str, sizes: Sequence[int]) -> tuple[int, float]:
        """For records of ``sizes`` bytes, in order: how many may go now (a prefix, at most one
        burst) and, when that is fewer than all, how long to wait before asking again."""
        limits = self.book.limits(tenant)
        events_rate, bytes_rate = limits.publish_events_per_s, limits.publish_bytes_per_s
        if not events_rate and not bytes_rate:
            return len(sizes), 0.0
        count = len(sizes)
        if events_rate:
            count = min(count, _bucket(events_rate, limits.burst_s).burst)
        nbytes = sum(sizes[:count])
        if bytes_rate:
            burst = _bucket(bytes_rate, limits.burst_s).burst
            while count > 1 and nbytes > burst:
                count -= 1
                nbytes -= sizes[count]
            nbytes = min(nbytes, burst)  # one record larger than a burst costs one burst
        wait = await self._spend(tenant, limits, count, nbytes)
        return (0, wait) if wait > 0 else (count, 0.0)

    async def _spend(self, tenant: str, limits: QuotaLimits, events: int, nbytes: int) -> float:
        """Take from both buckets; 0.0 if allowed, else the seconds until it would be. When the
        bytes bucket refuses, the events already taken stay spent (a slight undercount of what
        the tenant may send, never an overrun)."""
        scope = quote(tenant, safe="")
        for suffix, cost, rate in (("events", events, limits.publish_events_per_s),
                                   ("bytes", nbytes, limits.publish_bytes_per_s)):
            if not rate or cost < 1:
                continue
            decision = await self.limiter.acquire(f"quota:{scope}:{suffix}", cost=cost,
                                                  limit=_bucket(rate, limits.burst_s))
            if not decision.allowed:
                return max(decision.retry_after_s, 0.001)
        return 0.0
