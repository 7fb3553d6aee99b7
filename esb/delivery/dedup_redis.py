"""The exactly-once dedup store in Redis: ``SET NX PX`` leases, ``delivered`` markers with TTL.

Key ``{prefix}dedup:{subscription_id}:{event_id}``; its value is a lease token while a worker is
sending, ``delivered`` after a 2xx. Claim and release are Lua scripts, so check-and-set is atomic
across replicas. See :mod:`esb.delivery.dedup` for what the store guarantees.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from esb.delivery._redis import LuaScript, redis_errors, text
from esb.delivery.dedup import (
    DEFAULT_DELIVERED_TTL_S,
    DEFAULT_LEASE_S,
    Claim,
    ClaimStatus,
    Clock,
    DedupStore,
)

__all__ = ["RedisDedupStore"]

_DELIVERED = "delivered"

_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, ''} end
local current = redis.call('GET', KEYS[1])
if current == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, ''}
end
return {0, current}
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisDedupStore(DedupStore):
    """Dedup state shared across replicas and restarts (``redis.asyncio``)."""

    def __init__(self, client: Redis, *, prefix: str = "esb:",
                 delivered_ttl_s: float = DEFAULT_DELIVERED_TTL_S,
                 clock: Clock = time.time) -> None:
        super().__init__(delivered_ttl_s=delivered_ttl_s, clock=clock)
        self._client = client
        self._prefix = prefix
        self._claim = LuaScript(client, _CLAIM)
        self._release = LuaScript(client, _RELEASE)

    def _key(self, subscription_id: str, event_id: str) -> str:
        return f"{self._prefix}dedup:{subscription_id}:{event_id}"

    async def claim(self, subscription_id: str, event_id: str, *,
                    lease_s: float = DEFAULT_LEASE_S) -> Claim:
        token = self._new_token()
        won, current = await self._claim(
            [self._key(subscription_id, event_id)], [token, max(1, int(lease_s * 1000))]
        )
        if won:
            return Claim(ClaimStatus.CLAIMED, token)
        if text(current) == _DELIVERED:
            return Claim(ClaimStatus.ALREADY_DELIVERED)
        return Claim(ClaimStatus.IN_FLIGHT)

    async def mark_delivered(self, subscription_id: str, event_id: str) -> None:
        with redis_errors():
            await self._client.set(self._key(subscription_id, event_id), _DELIVERED,
                                   px=int(self.delivered_ttl_s * 1000))

    async def release(self, subscription_id: str, event_id: str, token: str) -> bool:
        return bool(await self._release([self._key(subscription_id, event_id)], [token]))

    async def is_delivered(self, subscription_id: str, event_id: str) -> bool:
        with redis_errors():
            value = await self._client.get(self._key(subscription_id, event_id))
        return value is not None and text(value) == _DELIVERED
