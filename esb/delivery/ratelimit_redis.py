"""GCRA rate limiting in Redis, shared by every replica: one Lua script per decision.

The key ``{prefix}rl:{scope}`` (one per tenant and endpoint, ``limit_scope``) holds the TAT in
milliseconds and expires when it is in the past (an idle endpoint leaves nothing behind). Time is
the caller's clock, as in the breaker.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from esb.delivery._redis import LuaScript, redis_errors, text
from esb.delivery.ratelimit import Clock, RateDecision, RateLimit, RateLimiter

__all__ = ["RedisRateLimiter"]

_GCRA = """
local key = KEYS[1]
local now, interval, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]),
  tonumber(ARGV[3]), tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', key) or ARGV[1])
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - interval * burst
if now < allow_at then
  return {0, string.format('%.3f', allow_at - now), 0}
end
local ttl = math.ceil(new_tat - now)
if ttl < 1 then ttl = 1 end
redis.call('SET', key, string.format('%.3f', new_tat), 'PX', ttl)
local remaining = math.floor((now - allow_at) / interval + 1e-9)
if remaining > burst then remaining = burst end
return {1, '0', remaining}
"""


class RedisRateLimiter(RateLimiter):
    """GCRA limiter whose state lives in Redis (``redis.asyncio``)."""

    def __init__(self, client: Redis, default: RateLimit | None = None, *,
                 prefix: str = "esb:", clock: Clock = time.time) -> None:
        super().__init__(default, clock=clock)
        self._client = client
        self._prefix = prefix
        self._gcra = LuaScript(client, _GCRA)

    def _key(self, endpoint: str) -> str:
        return f"{self._prefix}rl:{endpoint}"

    async def acquire(self, endpoint: str, *, cost: int = 1,
                      limit: RateLimit | None = None) -> RateDecision:
        chosen = self._checked(limit, cost)
        now_ms = self._clock() * 1000.0
        allowed, wait_ms, remaining = await self._gcra(
            [self._key(endpoint)],
            [f"{now_ms:.3f}", f"{chosen.interval_s * 1000.0:.6f}", chosen.burst, cost],
        )
        return RateDecision(bool(allowed), float(text(wait_ms)) / 1000.0, int(remaining))

    async def reset(self, endpoint: str) -> None:
        with redis_errors():
            await self._client.delete(self._key(endpoint))
