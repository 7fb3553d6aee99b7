"""Topic naming: the one place that knows how tenants, streams and lanes map onto Kafka topics.

Stream topics are ``<prefix>.<tenant>.<stream>.<lane>`` with one topic per priority lane, so a CRITICAL
event never waits behind a NORMAL backlog. Names are restricted (no dots) so a topic parses back
unambiguously, and a tenant's topics share the ``<prefix>.<tenant>.`` prefix for Kafka ACLs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from esb.errors import InvalidRequest

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

#: topic-name segments the bus itself uses right after the prefix or inside a tenant's namespace
#: (``<prefix>.ingress``, ``<prefix>.proc.<job>.state``, ``<prefix>.<tenant>.ingress.high`` …):
#: a tenant or stream of one of these names would share a namespace (and an ACL prefix) with
#: internal topics. The one list; ``esb.tenancy`` and stream creation both use it.
RESERVED_NAMES = frozenset({
    "ingress", "deadletter", "metadata", "proc", "retry", "sourcing", "delivery-status", "raw",
    "status", "internal", "system", "esb", "redeliver", "_redeliver", "delivery", "router",
    "changelog", "critical", "high", "normal", "low",
})


class Priority(StrEnum):
    CRITICAL = "CRITICAL"
    HIGH = "HIGH"
    NORMAL = "NORMAL"
    LOW = "LOW"

    @property
    def lane(self) -> str:
        return self.value.lower()

    @classmethod
    def parse(cls, value: str | bytes | None) -> Priority:
        if value is None or value == "" or value == b"":
            return cls.NORMAL
        text = value.decode() if isinstance(value, bytes) else value
        try:
            return cls(text.upper())
        except ValueError:
            raise InvalidRequest(
                f"priority must be one of CRITICAL, HIGH, NORMAL, LOW (got {text!r})",
                field="priority",
            ) from None


LANES: tuple[Priority, ...] = (Priority.CRITICAL, Priority.HIGH, Priority.NORMAL, Priority.LOW)


def check_name(kind: str, value: str) -> str:
    """Tenant and stream names become topic segments: lowercase, digits, '_' and '-' only."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise InvalidRequest(
            f"{kind} must match {NAME_RE.pattern} (lowercase letters, digits, '_' or '-')",
            field=kind,
            value=value,
        )
    if value in RESERVED_NAMES:
        raise InvalidRequest(f"{kind} {value!r} is reserved by the bus", field=kind, value=value)
    return value


@dataclass(frozen=True)
class TopicNames:
    prefix: str = "esb"

    @property
    def ingress(self) -> str:
        return f"{self.prefix}.ingress"

    def ingress_lane(self, priority: Priority) -> str:
        """NORMAL uses the plain ingress topic; other lanes get their own topic."""
        return self.ingress if priority is Priority.NORMAL else f"{self.ingress}.{priority.lane}"

    @property
    def ingress_topics(self) -> list[str]:
        return [self.ingress_lane(p) for p in LANES]

    def tenant_ingress(self, tenant: str, priority: Priority = Priority.NORMAL) -> str:
        """A tenant's own ingress, ``<prefix>.<tenant>.ingress[.lane]``: Kafka prefix ACLs on
        ``<prefix>.<tenant>.`` bind a producer to its tenant (ADR 0009)."""
        base = f"{self.prefix}.{tenant}.ingress"
        return base if priority is Priority.NORMAL else f"{base}.{priority.lane}"

    def tenant_ingress_topics(self, tenant: str) -> list[str]:
        return [self.tenant_ingress(tenant, p) for p in LANES]

    def ingress_pattern(self, priority: Priority, *, shared: bool) -> str:
        """The subscription pattern of one ingress lane: every tenant's lane topic, plus the
        shared lane topic when a single-tenant shared ingress is configured."""
        lane = "" if priority is Priority.NORMAL else rf"\.{priority.lane}"
        prefix = re.escape(self.prefix)
        pattern = rf"^{prefix}\.[a-z0-9][a-z0-9_-]{{0,62}}\.ingress{lane}$"
        if shared:
            pattern += rf"|^{prefix}\.ingress{lane}$"
        return pattern

    def ingress_tenant(self, topic: str) -> str | None:
        """The tenant that owns an ingress topic; None for the shared ingress."""
        parts = topic.split(".")
        if len(parts) >= 3 and parts[0] == self.prefix and parts[2] == "ingress":
            return parts[1]
        return None

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}.deadletter"

    @property
    def metadata(self) -> str:
        return f"{self.prefix}.metadata"

    def stream_base(self, tenant: str, stream: str) -> str:
        return f"{self.prefix}.{tenant}.{stream}"

    def stream_lane(self, tenant: str, stream: str, priority: Priority) -> str:
        return f"{self.prefix}.{tenant}.{stream}.{priority.lane}"

    def stream_topics(self, tenant: str, stream: str) -> list[str]:
        return [self.stream_lane(tenant, stream, p) for p in LANES]

    def parse_stream_topic(self, topic: str) -> tuple[str, str, Priority] | None:
        parts = topic.split(".")
        if len(parts) != 4 or parts[0] != self.prefix or parts[2] == "ingress":
            return None
        try:
            return parts[1], parts[2], Priority(parts[3].upper())
        except ValueError:
            return None
