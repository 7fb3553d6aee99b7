"""Which strings may be tenant ids (checked where a tenant id enters: token verification in
:mod:`esb.auth`, token minting in ``esb token``).

A tenant id becomes the second segment of topic names (``<prefix>.<tenant>.<stream>.<lane>``),
of consumer groups and of Kafka ACL prefixes, where the bus's own topics live too; the names it
keeps for itself are :data:`esb.topics.RESERVED_NAMES`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from esb import topics
from esb.errors import InvalidRequest, RateLimited

RESERVED_TENANT_IDS: frozenset[str] = topics.RESERVED_NAMES


def check_tenant_id(value: object) -> str:
    """Return ``value`` if it can be a tenant id; else InvalidRequest saying why (malformed or
    reserved), so callers can turn it into a 401 or a CLI error."""
    if not isinstance(value, str) or not topics.NAME_RE.match(value):
        raise InvalidRequest(
            f"tenant id {value!r} must match {topics.NAME_RE.pattern} "
            "(lowercase letters, digits, '_' or '-')", field="tenant_id")
    if value in RESERVED_TENANT_IDS:
        raise InvalidRequest(
            f"tenant id {value!r} is reserved: the bus uses it in its own topic names "
            f"(reserved: {', '.join(sorted(RESERVED_TENANT_IDS))})", field="tenant_id")
    return value


class TenantSlots:
    """Open WebSocket connections per tenant, bounded: each one holds a Kafka consumer (sockets,
    fetch buffers), so one tenant must not exhaust a replica. Counted per replica, in-process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}

    @contextlib.contextmanager
    def hold(self, tenant: str) -> Iterator[None]:
        """Take a slot for the connection's lifetime, or RateLimited (429) when none is free."""
        count = self.open.get(tenant, 0)
        if count >= self.limit:
            raise RateLimited(f"tenant has {count} open WebSocket connections; the limit is "
                              f"{self.limit} per replica", limit=self.limit, retry_after=5)
        self.open[tenant] = count + 1
        try:
            yield
        finally:
            left = self.open[tenant] - 1
            if left:
                self.open[tenant] = left
            else:
                del self.open[tenant]
