"""The circuit breaker in Redis, shared by every replica; each transition is one Lua script.

One hash per (tenant, endpoint) scope (``esb.delivery.endpoints.limit_scope``) at
``{prefix}cb:{scope}`` (fields: s=state, f=failures, o=opened_at, p=probe lease end). A closed
circuit without failures has no key at all. Keys expire after ``state_ttl_s`` of inactivity.
Time is the caller's clock (replicas are assumed NTP-synced), which keeps both implementations
testable with one fake clock.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from esb.delivery._redis import LuaScript, redis_errors, text
from esb.delivery.breaker import BreakerConfig, CircuitBreaker, CircuitState, Clock, Permit

__all__ = ["RedisCircuitBreaker"]

_ACQUIRE = """
local key = KEYS[1]
local now, cooldown, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local s = redis.call('HGET', key, 's')
if (not s) or s == 'closed' then return {1, 'closed', '0'} end
if s == 'open' then
  local reopen = tonumber(redis.call('HGET', key, 'o')) + cooldown
  if now < reopen then return {0, 'open', string.format('%.6f', reopen - now)} end
else
  local p = tonumber(redis.call('HGET', key, 'p') or '0')
  if now < p then return {0, 'half_open', string.format('%.6f', p - now)} end
end
redis.call('HSET', key, 's', 'half_open', 'p', string.format('%.6f', now + cooldown))
redis.call('PEXPIRE', key, ttl)
return {1, 'half_open', '0'}
"""

_SUCCESS = """
local s = redis.call('HGET', KEYS[1], 's')
if s == 'open' then return 'open' end
redis.call('DEL', KEYS[1])
return 'closed'
"""

_FAILURE = """
local key = KEYS[1]
local now, threshold, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local s = redis.call('HGET', key, 's')
if s == 'open' then return 'open' end
local f = redis.call('HINCRBY', key, 'f', 1)
if s == 'half_open' or f >= threshold then
  redis.call('HSET', key, 's', 'open', 'o', now, 'p', '0')
  redis.call('PEXPIRE', key, ttl)
  return 'open'
end
if not s then redis.call('HSET', key, 's', 'closed') end
redis.call('PEXPIRE', key, ttl)
return 'closed'
"""


class RedisCircuitBreaker(CircuitBreaker):
    """Breaker state shared across replicas through Redis (``redis.asyncio``)."""

    def __init__(self, client: Redis, config: BreakerConfig | None = None, *,
                 prefix: str = "esb:", clock: Clock = time.time,
                 state_ttl_s: float = 86_400.0) -> None:
        super().__init__(config, clock=clock)
        self._client = client
        self._prefix = prefix
        self._ttl_ms = int(max(state_ttl_s, 2 * self.config.cooldown_s) * 1000)
        self._acquire = LuaScript(client, _ACQUIRE)
        self._success = LuaScript(client, _SUCCESS)
        self._failure = LuaScript(client, _FAILURE)

    def _key(self, endpoint: str) -> str:
        return f"{self._prefix}cb:{endpoint}"

    async def acquire(self, endpoint: str) -> Permit:
        allowed, state, wait = await self._acquire(
            [self._key(endpoint)], [f"{self._clock():.6f}", self.config.cooldown_s, self._ttl_ms]
        )
        return Permit(bool(allowed), CircuitState(text(state)), float(text(wait)))

    async def record_success(self, endpoint: str) -> CircuitState:
        return CircuitState(text(await self._success([self._key(endpoint)], [])))

    async def record_failure(self, endpoint: str) -> CircuitState:
        state = await self._failure(
            [self._key(endpoint)],
            [f"{self._clock():.6f}", self.config.failure_threshold, self._ttl_ms],
        )
        return CircuitState(text(state))

    async def state(self, endpoint: str) -> CircuitState:
        with redis_errors():
            fields = await self._client.hmget(self._key(endpoint), ["s", "o"])
        raw_state, opened_at = fields
        if raw_state is None:
            return CircuitState.CLOSED
        state = CircuitState(text(raw_state))
        if state is CircuitState.OPEN and (
            self._clock() >= float(text(opened_at)) + self.config.cooldown_s
        ):
            return CircuitState.HALF_OPEN
        return state

    async def reset(self, endpoint: str) -> None:
        with redis_errors():
            await self._client.delete(self._key(endpoint))
