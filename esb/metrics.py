"""Prometheus metrics. Label sets are bounded: tenant, stream, lane/priority, reason, stage."""

from __future__ import annotations

from collections import Counter as Tally

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

PUBLISHED = Counter("esb_events_published_total", "Events accepted and acknowledged by Kafka",
                    ["tenant", "stream", "priority", "path"], registry=REGISTRY)
ROUTED = Counter("esb_events_routed_total", "Events routed from the Kafka ingress to a stream",
                 ["tenant", "stream", "priority"], registry=REGISTRY)
DEAD_LETTERED = Counter("esb_events_dead_lettered_total", "Events sent to the dead-letter topic",
                        ["tenant", "stream", "stage", "reason"], registry=REGISTRY)
REDRIVEN = Counter("esb_events_redriven_total", "Dead letters re-published", ["tenant"],
                   registry=REGISTRY)
PUBLISH_LATENCY = Histogram(
    "esb_publish_latency_seconds", "HTTP publish: request received to broker acknowledgement",
    ["path"], registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
ROUTE_LATENCY = Histogram(
    "esb_route_latency_seconds", "Kafka ingress: record timestamp to routed acknowledgement",
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
HTTP_REQUESTS = Counter("esb_http_requests_total", "HTTP requests by route and status",
                        ["method", "route", "status"], registry=REGISTRY)
ROUTER_ASSIGNED = Gauge("esb_router_assigned_partitions", "Ingress partitions owned by this worker",
                        ["lane"], registry=REGISTRY)


def flush_tally(counter: Counter, tally: Tally[tuple[str, ...]]) -> None:
    """Apply per-batch counts in one call per label set (labels() is the costly part)."""
    for labels, n in tally.items():
        counter.labels(*labels).inc(n)
    tally.clear()


CONSUMER_BACKOFFS = Counter("esb_consumer_backoffs_total",
                            "Infrastructure failures a consumer loop backed off on", ["stage"],
                            registry=REGISTRY)
CONSUMER_POISON = Counter("esb_consumer_poison_records_total",
                          "Records that failed on their own and were set aside", ["stage"],
                          registry=REGISTRY)
