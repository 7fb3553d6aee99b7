"""A RUNNING catalog record turned into what a runner needs: handler, topics, target, policy.

Pure: reads stream records from the directory, touches no broker. A job's source partition
number ``p`` spans partition ``p`` of every lane topic of the source stream (and of the JOIN's
right stream), so one state value per (job, p) sees all of them; the runners use Kafka's range
assignor, which gives one consumer partition ``p`` of every subscribed topic together. Keyed
jobs (windows, JOIN, patterns) read their sources re-keyed instead, through one repartition
topic of ``partitions`` partitions, unless the definition says the sources are co-partitioned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from esb.errors import NotFound
from esb.processing.handlers import PatternHandler, ProcessorHandler
from esb.processing.models import ErrorHandlingStrategy, ProcessorType, parse_processor_definition
from esb.processing.service import PATTERN_KIND, PROCESSOR_KIND
from esb.streams import StreamDirectory

Side = Literal["left", "right"]


@dataclass
class Job:
    job_id: str
    kind: str  # PROCESSOR_KIND or PATTERN_KIND
    tenant: str
    name: str
    handler: ProcessorHandler | PatternHandler
    sources: dict[str, Side]  # source topic -> join side
    partitions: int
    target: dict[str, Any]  # the target (or alerts) stream record
    strategy: ErrorHandlingStrategy
    parallelism: int
    fingerprint: str  # changes when the record's running configuration changes
    source_partitions: dict[str, int] = field(default_factory=dict)  # source topic -> count
    repartitioned: bool = False  # reads its sources re-keyed by the job key (see repartition)

    @property
    def source_keys(self) -> list[str]:
        """Every source topic partition, as ``<topic>:<partition>`` (an Origin's source_key)."""
        return [f"{topic}:{p}" for topic, count in self.source_partitions.items()
                for p in range(count)]

    @property
    def stateful(self) -> bool:
        """Keeps per-key state whose time must advance (windows, JOIN, patterns)."""
        return self.handler.keyed

    @property
    def consumers(self) -> int:
        """Consumers per replica: ``parallelism``, bounded by the partitions to share."""
        return max(1, min(self.parallelism, self.partitions))

    def state_key(self, partition: int) -> str:
        return f"{self.job_id}:{partition}"


def _stream(directory: StreamDirectory, tenant: str, ref: str) -> dict[str, Any]:
    stream = directory.get(tenant, ref)
    if stream is None:
        raise NotFound(f"stream {ref!r} not found", stream_id=ref)
    return stream


def _fingerprint(record: dict[str, Any]) -> str:
    return f"{record.get('started_at')}|{record.get('status')}"


def job_from_record(kind: str, record: dict[str, Any], directory: StreamDirectory) -> Job:
    tenant = record["tenant_id"]
    source = _stream(directory, tenant, record["source_stream_id"])
    sources: dict[str, Side] = {topic: "left" for topic in source["topics"].values()}
    counts = {topic: source["partitions"] for topic in source["topics"].values()}
    strategy = ErrorHandlingStrategy(record["error_handling_strategy"])
    if kind == PROCESSOR_KIND:
        definition = parse_processor_definition(record["definition"])
        handler: ProcessorHandler | PatternHandler = ProcessorHandler(
            record["processor_id"], definition, tenant=tenant)
        if definition.processor_type == ProcessorType.JOIN:
            right = _stream(directory, tenant, definition.logic.join_stream_id)
            sources.update({topic: "right" for topic in right["topics"].values()})
            counts.update({topic: right["partitions"] for topic in right["topics"].values()})
        target = _stream(directory, tenant, record["target_stream_id"])
        return Job(record["processor_id"], kind, tenant, record["processor_name"], handler,
                   sources, source["partitions"], target, strategy, record["parallelism"],
                   _fingerprint(record), counts,
                   repartitioned=handler.keyed and not definition.co_partitioned)
    if kind != PATTERN_KIND:
        raise ValueError(f"unknown job kind {kind!r}")
    lag = record["timer_lag_ms"] if record.get("timers", "wall_clock") == "wall_clock" else None
    handler = PatternHandler(record["pattern_id"], record["definition"], tenant=tenant,
                             pattern_name=record["pattern_name"], timer_lag_ms=lag)
    target = _stream(directory, tenant, record["alerts_stream_id"])
    return Job(record["pattern_id"], kind, tenant, record["pattern_name"], handler, sources,
               source["partitions"], target, strategy, record.get("parallelism", 1),
               _fingerprint(record), counts,
               repartitioned=not record.get("co_partitioned", False))
