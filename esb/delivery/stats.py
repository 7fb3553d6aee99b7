"""Per-subscription delivery counters and per-group rebalance times, shared through Redis.

Workers count locally and flush every second (one pipelined round trip), so the hot path never
waits on Redis. Without Redis the numbers are this replica's own.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from typing import Any

from redis.exceptions import RedisError

log = logging.getLogger(__name__)

__all__ = ["DeliveryStats"]

COUNTERS = ("events_delivered", "events_failed", "events_dead_lettered", "events_filtered")


class DeliveryStats:
    def __init__(self, redis: Any | None, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._fields: defaultdict[str, dict[str, str]] = defaultdict(dict)
        self._pending_counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._pending_fields: defaultdict[str, dict[str, str]] = defaultdict(dict)

    def _key(self, subscription_id: str) -> str:
        return f"{self._prefix}substats:{subscription_id}"

    def count(self, subscription_id: str, name: str, n: int = 1) -> None:
        if n:
            self._counts[subscription_id][name] += n
            self._pending_counts[subscription_id][name] += n

    def set(self, subscription_id: str, **fields: Any) -> None:
        values = {k: "" if v is None else str(v) for k, v in fields.items()}
        self._fields[subscription_id].update(values)
        self._pending_fields[subscription_id].update(values)

    def delivered(self, subscription_id: str, n: int) -> None:
        now = time.time()
        self.count(subscription_id, "events_delivered", n)
        self.set(subscription_id, last_delivery_at=now, last_success_at=now,
                 consecutive_failures=0)

    def failed(self, subscription_id: str, n: int, error: str) -> None:
        self.count(subscription_id, "events_failed", n)
        local = int(self._fields[subscription_id].get("consecutive_failures") or 0) + 1
        self.set(subscription_id, last_delivery_at=time.time(), last_error=error[:500],
                 consecutive_failures=local)

    def rebalanced(self, group_id: str) -> None:
        self.set(f"group:{group_id}", last_rebalance=time.time())

    async def flush(self) -> None:
        counts, self._pending_counts = self._pending_counts, defaultdict(Counter)
        fields, self._pending_fields = self._pending_fields, defaultdict(dict)
        if self._redis is None or not (counts or fields):
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for sub, counter in counts.items():
                    for name, n in counter.items():
                        pipe.hincrby(self._key(sub), name, n)
                for sub, values in fields.items():
                    pipe.hset(self._key(sub), mapping=values)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("delivery stats not flushed (%s); keeping them for the next flush", exc)
            for sub, counter in counts.items():
                self._pending_counts[sub].update(counter)
            for sub, values in fields.items():
                self._pending_fields[sub] = {**values, **self._pending_fields[sub]}

    async def read(self, subscription_id: str) -> dict[str, str]:
        if self._redis is not None:
            try:
                raw = await self._redis.hgetall(self._key(subscription_id))
                return {(k.decode() if isinstance(k, bytes) else k):
                        (v.decode() if isinstance(v, bytes) else v) for k, v in raw.items()}
            except (RedisError, OSError) as exc:
                log.warning("delivery stats unreadable (%s); showing this replica's", exc)
        local = {k: str(v) for k, v in self._counts[subscription_id].items()}
        return {**local, **self._fields[subscription_id]}

    async def last_rebalance(self, group_id: str) -> float | None:
        value = (await self.read(f"group:{group_id}")).get("last_rebalance")
        return float(value) if value else None
