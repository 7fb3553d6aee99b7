"""Delivery guarantees per mode, and the dedup store that exactly-once delivery relies on.

The subscription worker consumes a Kafka stream topic with at-least-once consumption: an offset
is committed only after the worker is done with the record, and after a crash or rebalance the
next owner of the partition resumes from the last committed offset, so it may see a record
again. Webhook receivers sit outside Kafka, so no Kafka transaction can cover the HTTP call.
What each mode guarantees, precisely:

``at_most_once``
    The offset is committed *before* the HTTP attempt, and there are no retries. A crash between
    commit and send, or any failed attempt, loses the event; an event is never sent twice by
    the bus. Use for telemetry-like data where a duplicate hurts more than a gap.

``at_least_once``
    The offset is committed only after the event is *settled*: delivered (2xx), forwarded to a
    retry tier topic (itself an at-least-once Kafka write acknowledged before the commit), or
    dead-lettered (DLQ write acknowledged before the commit). No event is lost while Kafka keeps
    it, but a crash after a 2xx and before the commit re-sends it, and a timeout that the
    receiver actually processed is retried: duplicates are possible and carry the same
    ``webhook-id``.

``exactly_once``
    at-least-once, plus: a stable ``webhook-id`` (the event id, or a digest of the batch's ids),
    and this dedup store consulted *before* each send and written *after* each 2xx. A record
    seen again after a crash or rebalance is recognised as delivered and only committed.
    What remains is the window between the receiver's 2xx and our ``mark_delivered`` (and an
    HTTP timeout after the receiver processed the request): the bus then re-sends with the
    same ``webhook-id``. So end-to-end exactly-once *processing* also needs the receiver to
    dedup by ``webhook-id``, as the Standard Webhooks spec asks of every receiver. The bus
    guarantees: no loss, and every duplicate it may send is recognisable. Within the store's
    TTL (default 7 days), events already marked are never re-sent, even on redrive or replay.

``claim`` takes a short lease before sending so two replicas that both hold a record during a
rebalance do not both send it: the loser sees ``IN_FLIGHT`` and must retry later (route the
record to a retry tier, never commit it as done), because the lease holder may still crash.
``release`` gives the lease up after a failed attempt; ``mark_delivered`` makes it permanent.

Two implementations behind :class:`DedupStore`: :class:`InMemoryDedupStore` (an LRU with TTL, one
node; after a restart it knows nothing) and :class:`esb.delivery.dedup_redis.RedisDedupStore`
(``SET NX PX`` in Redis, shared across replicas and restarts).
"""

from __future__ import annotations

import abc
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Claim", "ClaimStatus", "DedupStore", "InMemoryDedupStore"]

Clock = Callable[[], float]
DEFAULT_DELIVERED_TTL_S = 7 * 24 * 3600.0
DEFAULT_LEASE_S = 60.0


class ClaimStatus(StrEnum):
    CLAIMED = "claimed"  # send it; then mark_delivered (2xx) or release (failure)
    ALREADY_DELIVERED = "already_delivered"  # skip the send; commit the offset
    IN_FLIGHT = "in_flight"  # another worker holds the lease; retry later, do not commit as done


@dataclass(frozen=True, slots=True)
class Claim:
    status: ClaimStatus
    token: str | None = None  # proves ownership of the lease to ``release``


class DedupStore(abc.ABC):
    """Which events a subscription has delivered (or is delivering right now)."""

    def __init__(self, *, delivered_ttl_s: float = DEFAULT_DELIVERED_TTL_S,
                 clock: Clock = time.time) -> None:
        if delivered_ttl_s <= 0:
            raise ValueError("delivered_ttl_s must be > 0")
        self.delivered_ttl_s = delivered_ttl_s
        self._clock = clock

    @staticmethod
    def _new_token() -> str:
        return secrets.token_hex(8)

    @abc.abstractmethod
    async def claim(self, subscription_id: str, event_id: str, *,
                    lease_s: float = DEFAULT_LEASE_S) -> Claim:
        """Reserve the right to send ``event_id`` for ``lease_s`` seconds (atomic)."""

    @abc.abstractmethod
    async def mark_delivered(self, subscription_id: str, event_id: str) -> None:
        """Record a 2xx: the event is never sent again within ``delivered_ttl_s``."""

    @abc.abstractmethod
    async def release(self, subscription_id: str, event_id: str, token: str) -> bool:
        """Give up a lease after a failed attempt; False if it was no longer ours."""

    @abc.abstractmethod
    async def is_delivered(self, subscription_id: str, event_id: str) -> bool:
        """True if a 2xx for this event was recorded and has not expired."""


_DELIVERED = "delivered"


class InMemoryDedupStore(DedupStore):
    """A bounded LRU of (subscription, event) -> state with expiry; for a single node."""

    def __init__(self, *, max_entries: int = 100_000,
                 delivered_ttl_s: float = DEFAULT_DELIVERED_TTL_S,
                 clock: Clock = time.time) -> None:
        super().__init__(delivered_ttl_s=delivered_ttl_s, clock=clock)
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()

    def _live(self, key: tuple[str, str]) -> tuple[str, float] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def _put(self, key: tuple[str, str], value: str, ttl_s: float) -> None:
        self._entries[key] = (value, self._clock() + ttl_s)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def claim(self, subscription_id: str, event_id: str, *,
                    lease_s: float = DEFAULT_LEASE_S) -> Claim:
        key = (subscription_id, event_id)
        entry = self._live(key)
        if entry is not None:
            return Claim(ClaimStatus.ALREADY_DELIVERED if entry[0] == _DELIVERED
                         else ClaimStatus.IN_FLIGHT)
        token = self._new_token()
        self._put(key, token, lease_s)
        return Claim(ClaimStatus.CLAIMED, token)

    async def mark_delivered(self, subscription_id: str, event_id: str) -> None:
        self._put((subscription_id, event_id), _DELIVERED, self.delivered_ttl_s)

    async def release(self, subscription_id: str, event_id: str, token: str) -> bool:
        key = (subscription_id, event_id)
        entry = self._live(key)
        if entry is None or entry[0] != token:
            return False
        del self._entries[key]
        return True

    async def is_delivered(self, subscription_id: str, event_id: str) -> bool:
        entry = self._live((subscription_id, event_id))
        return entry is not None and entry[0] == _DELIVERED
