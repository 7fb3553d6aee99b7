"""Prometheus metrics. Label sets are bounded: tenant, stream, lane/priority, reason, stage."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric

REGISTRY = CollectorRegistry(auto_describe=True)

PUBLISHED = Counter("esb_events_published_total", "Events accepted and acknowledged by Kafka",
                    ["tenant", "stream", "priority", "path"], registry=REGISTRY)
ROUTED = Counter("esb_events_routed_total", "Events routed from the Kafka ingress to a stream",
                 ["tenant", "stream", "priority"], registry=REGISTRY)
DEAD_LETTERED = Counter("esb_events_dead_lettered_total", "Events sent to the dead-letter topic",
                        ["tenant", "stream", "stage", "reason"], registry=REGISTRY)
REDRIVEN = Counter("esb_events_redriven_total", "Dead letters re-published", ["tenant"],
                   registry=REGISTRY)
AUDIT_APPEND_FAILURES = Counter("esb_audit_append_failures_total",
                                "Audited requests whose entry could not be stored (ADR 0017)",
                                registry=REGISTRY)
QUOTA_THROTTLED = Counter("esb_quota_throttled_total",
                          "Publish-quota refusals: HTTP 429s, ingress partitions held (ADR 0016)",
                          ["tenant", "path"], registry=REGISTRY)
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

# --- issue 12: what an operator alerts on (docs/metrics.md lists each; ADR 0020) ------------
# Labels stay bounded: tenant, stream, group, subscription, processor/pattern ids are all
# bounded by what a tenant defined; never event ids, aggregate ids or raw paths.

# ``stage`` says which loop runs the group: ``delivery`` (a subscription; ``group`` is its id),
# or the worker's own groups (``group`` is the Kafka group id): ``ingress``, ``projection``,
# ``deadletter-index``, ``processor``, ``delivery-retry``, ``sourcing``
CONSUMER_LAG = Gauge("esb_consumer_lag_records",
                     "Records a consumer group has still to read, per partition (end - committed)",
                     ["tenant", "stream", "group", "partition", "stage"], registry=REGISTRY)
CONSUMER_LAG_SECONDS = Gauge(
    "esb_consumer_lag_seconds",
    "Age of the oldest record a group has not read yet (0 when caught up), per partition",
    ["tenant", "stream", "group", "partition", "stage"], registry=REGISTRY)
LAG_SCANS = Counter("esb_lag_scans_total", "Background lag scans by result (ok, error)",
                    ["result"], registry=REGISTRY)
STREAM_PUBLISH_LATENCY = Histogram(
    "esb_stream_publish_latency_seconds",
    "HTTP publish to broker acknowledgement, per tenant and stream",
    ["tenant", "stream"], registry=REGISTRY,
    buckets=(0.0025, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5),
)
DELIVERY_ATTEMPTS = Counter("esb_delivery_attempts_total",
                            "Webhook requests made, by attempt outcome", ["tenant", "stream",
                                                                          "outcome"],
                            registry=REGISTRY)
DELIVERY_EVENTS = Counter("esb_delivery_events_total",
                          "Events settled after an attempt, by next action (done, retry, "
                          "dead_letter, drop, disable)", ["tenant", "stream", "action"],
                          registry=REGISTRY)
DELIVERY_LATENCY = Histogram("esb_delivery_latency_seconds", "Webhook request duration",
                             ["tenant"], registry=REGISTRY,
                             buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
DELIVERY_CIRCUIT = Gauge("esb_delivery_circuit_state",
                         "Circuit breaker a subscription's endpoint is behind "
                         "(0 closed, 1 half-open, 2 open)", ["tenant", "subscription"],
                         registry=REGISTRY)
#: ``esb_delivery_circuit_state`` values by breaker state name
CIRCUIT_LEVEL: dict[str, int] = {"closed": 0, "half_open": 1, "open": 2}
PROCESSOR_EVENTS = Counter("esb_processor_events_total",
                           "Inputs a stream processor or pattern handled, by outcome "
                           "(passed, filtered, error)", ["tenant", "job", "outcome"],
                           registry=REGISTRY)
PROCESSOR_LATE_EVENTS = Counter("esb_processor_late_events_total",
                                "Inputs that arrived after their window closed (dropped)",
                                ["tenant", "job"], registry=REGISTRY)
PROCESSOR_WINDOW_CLOSES = Counter("esb_processor_window_closes_total",
                                  "Results keyed processors emitted: one per closed window (JOIN: per "
                                  "joined pair)", ["tenant", "job"],
                                  registry=REGISTRY)
PATTERN_MATCHES = Counter("esb_pattern_matches_total", "CEP pattern matches (alerts emitted)",
                          ["tenant", "job"], registry=REGISTRY)
SOURCING_APPENDS = Counter("esb_sourcing_appends_total",
                           "Event-sourcing append commands by outcome (accepted, duplicate, "
                           "conflict)", ["tenant", "outcome"], registry=REGISTRY)
SOURCING_RECONSTRUCT = Histogram("esb_sourcing_reconstruct_seconds",
                                 "Time to rebuild an aggregate's state", ["tenant"],
                                 registry=REGISTRY,
                                 buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0))
DEAD_LETTERS = Counter("esb_dead_letters_total",
                       "Dead letters indexed, from every stage, by stage and reason",
                       ["tenant", "stage", "reason"], registry=REGISTRY)
DATA_DIR_BYTES = Gauge("esb_data_dir_bytes",
                       "Bytes under ESB_DATA_DIR (tables, embedded broker and database)",
                       registry=REGISTRY)


class DataDirCollector:
    """``esb_data_dir_filesystem_{free,size}_bytes`` read at scrape time (one statvfs call);
    the directory's own size is walked by the background monitor into ``DATA_DIR_BYTES``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> Iterator[Metric]:
        import psutil

        try:
            usage = psutil.disk_usage(self.path)
        except OSError:
            return
        for name, value, doc in (("free", usage.free, "Free bytes on the data directory's disk"),
                                 ("size", usage.total, "Size of the data directory's disk")):
            yield GaugeMetricFamily(f"esb_data_dir_filesystem_{name}_bytes", doc, value=value)


_process_installed: list[str] = []


def install_process_collectors(data_dir: str) -> None:
    """CPU, memory and file descriptors of this process (``process_*``) and the data directory's
    disk; once per process (a second registration would raise)."""
    if _process_installed:
        return
    ProcessCollector(registry=REGISTRY)
    REGISTRY.register(DataDirCollector(data_dir))  # type: ignore[arg-type]
    _process_installed.append(data_dir)


def series(metric: Counter | Gauge | Histogram, tenant: str | None = None
           ) -> Iterator[tuple[str, dict[str, str], float]]:
    """(sample name, labels, value) of one metric; with ``tenant``, only that tenant's series.

    Filtering by tenant before building samples matters: collecting every tenant's series took
    0.8 s per read with 1,000 streams here (docs/adr/0020). It uses prometheus_client's
    per-child table (``_metrics``, ``_samples``: what its own ``collect`` iterates), falling
    back to ``collect`` if a release changes them."""
    children = getattr(metric, "_metrics", None)
    names: tuple[str, ...] = getattr(metric, "_labelnames", ())
    if tenant is None or children is None or "tenant" not in names:
        for family in metric.collect():
            for sample in family.samples:
                if tenant is None or sample.labels.get("tenant") == tenant:
                    yield sample.name, sample.labels, sample.value
        return
    at = names.index("tenant")
    prefix = metric._name  # type: ignore[union-attr]
    for values, child in list(children.items()):
        if values[at] != tenant:
            continue
        labels = dict(zip(names, values, strict=True))
        for sample in child._samples():
            yield prefix + sample[0], {**labels, **sample[1]}, sample[2]


class _TenantView:
    """The registry as one tenant may see it: series labelled with another tenant are left
    out; series without a tenant label (process, HTTP by route, consumer loops) stay."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant

    def collect(self) -> Iterator[Metric]:
        for family in REGISTRY.collect():
            kept = [s for s in family.samples if s.labels.get("tenant", self.tenant) == self.tenant]
            clone = Metric(family.name, family.documentation, family.type, family.unit)
            clone.samples = kept
            yield clone


def exposition(tenant: str | None) -> bytes:
    """Prometheus text of the whole registry (``tenant=None``: operators) or one tenant's view."""
    from prometheus_client import generate_latest

    return generate_latest(REGISTRY if tenant is None else _TenantView(tenant))  # type: ignore[arg-type]
