"""Per-stream totals read from this worker's Prometheus registry, and rates between two reads.

The WebSocket monitor and ``GET /streams/{id}/metrics`` read the same counters Prometheus
scrapes, so a dashboard and the API never disagree. Totals are this replica's (publish and
ingress counters) except lag, which the background scan reads from the broker for every group;
a stream's lag here is its subscriptions' (stage ``delivery``), not the worker's own groups'.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from esb.metrics import (
    CONSUMER_LAG,
    CONSUMER_LAG_SECONDS,
    DEAD_LETTERED,
    DELIVERY_ATTEMPTS,
    PUBLISHED,
    ROUTED,
    STREAM_PUBLISH_LATENCY,
    series,
)
from esb.monitoring.groups import DELIVERY_STAGE

#: the figures a subscriber may ask for (the seed names the first three)
METRIC_NAMES: tuple[str, ...] = ("throughput", "latency", "error_rate", "lag")


@dataclass(slots=True)
class StreamTotals:
    """Monotonic totals of one stream at one moment (plus the current lag gauges)."""

    events: float = 0.0  # accepted over HTTP + routed from the Kafka ingress
    errors: float = 0.0  # dead-lettered at ingress + failed webhook attempts
    latency_sum: float = 0.0
    latency_count: float = 0.0
    lag_records: float = 0.0
    lag_seconds: float = 0.0
    lag_by_group: dict[str, float] = field(default_factory=dict)


def read_totals(tenant: str, streams: Iterable[str]) -> dict[str, StreamTotals]:
    """Totals for ``tenant``'s ``streams`` (names); only that tenant's series are read."""
    wanted = set(streams)
    out = {name: StreamTotals() for name in wanted}

    def mine(labels: dict[str, str]) -> StreamTotals | None:
        if labels.get("tenant") != tenant:
            return None
        return out.get(labels.get("stream", ""))

    for metric in (PUBLISHED, ROUTED):
        for name, labels, value in series(metric, tenant):
            totals = mine(labels)
            if totals is not None and name.endswith("_total"):
                totals.events += value
    for name, labels, value in series(DEAD_LETTERED, tenant):
        totals = mine(labels)
        if totals is not None and name.endswith("_total"):
            totals.errors += value
    for name, labels, value in series(DELIVERY_ATTEMPTS, tenant):
        totals = mine(labels)
        if totals is not None and name.endswith("_total") and labels["outcome"] != "success":
            totals.errors += value
    for name, labels, value in series(STREAM_PUBLISH_LATENCY, tenant):
        totals = mine(labels)
        if totals is None:
            continue
        if name.endswith("_sum"):
            totals.latency_sum += value
        elif name.endswith("_count"):
            totals.latency_count += value
    for _, labels, value in series(CONSUMER_LAG, tenant):
        totals = mine(labels)
        if totals is not None and labels.get("stage") == DELIVERY_STAGE:
            totals.lag_records += value
            group = labels["group"]
            totals.lag_by_group[group] = totals.lag_by_group.get(group, 0.0) + value
    for _, labels, value in series(CONSUMER_LAG_SECONDS, tenant):
        totals = mine(labels)
        if totals is not None and labels.get("stage") == DELIVERY_STAGE:
            totals.lag_seconds = max(totals.lag_seconds, value)
    return out


def rates(before: StreamTotals, after: StreamTotals, elapsed_s: float) -> dict[str, float]:
    """The monitor's figures between two reads: events/s, mean publish latency (ms) of the
    events in between, the share of failures among them, and the current lag."""
    span = max(elapsed_s, 1e-6)
    events = max(0.0, after.events - before.events)
    errors = max(0.0, after.errors - before.errors)
    count = after.latency_count - before.latency_count
    latency_ms = (1000 * (after.latency_sum - before.latency_sum) / count) if count > 0 else 0.0
    handled = events + errors
    return {
        "throughput": round(events / span, 3),
        "latency": round(latency_ms, 3),
        "error_rate": round(errors / handled, 4) if handled else 0.0,
        "lag": after.lag_records,
        "lag_seconds": round(after.lag_seconds, 3),
    }
