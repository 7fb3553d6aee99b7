"""Projection: copies every event routed to any stream lane into the PostgreSQL read side.

Kafka-native and batched like the ingress router (a Faust stream per event would cap the rate):
one consumer group subscribed by pattern to every stream lane topic of this bus
(``<prefix>.<tenant>.<stream>.<lane>``; new streams are picked up on the next metadata refresh).
Each poll is written as one batch: archive rows (idempotent by tenant and event id), processing
history (INGESTION from the record, stages carried in the ``esb-history`` header, PROJECTION
with the batch's timing) and user read models. Offsets are committed only after the writes, so
a crash replays the batch, which the idempotent writes absorb. A database outage pauses the
loop with backoff; nothing is skipped.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

import psycopg
from aiokafka import TopicPartition
from mode import Service

from esb.consumer_kit import PATTERN_METADATA_MAX_AGE_MS, Batches, ConsumerLoop
from esb.deadletter import Failure
from esb.observability import tracing
from esb.readside import EventArchive, ProcessingHistory, ReadModelStore
from esb.readside.ingest import Ingested, ingest_record, projection_record
from esb.runtime import Runtime
from esb.streams import on_stream_written
from esb.topics import LANES

log = logging.getLogger(__name__)

MAX_RECORDS = 2000


def lane_pattern(prefix: str) -> str:
    """Every stream lane topic ``<prefix>.<tenant>.<stream>.<lane>``; not the tenants' ingress
    topics ``<prefix>.<tenant>.ingress.<lane>``, whose records are not routed yet."""
    lanes = "|".join(p.lane for p in LANES)
    return rf"^{re.escape(prefix)}\.[^.]+\.(?!ingress\.)[^.]+\.({lanes})$"


class ProjectionLoop(ConsumerLoop):
    """Archive, history and read models for each poll; the kit commits after the writes. A
    record the database refuses (e.g. a NUL in a JSON string) fails its poll, the kit replays
    the poll one record at a time, and that record becomes a dead letter (stage projection)."""

    stage = "projection"

    def __init__(self, runtime: Runtime) -> None:
        s = runtime.settings
        group = f"{s.app_id}-projection"
        super().__init__(runtime, name=group, group_id=group, pattern=lane_pattern(s.topic_prefix),
                         poll_timeout_ms=500, max_poll_records=MAX_RECORDS,
                         fetch_max_wait_ms=max(s.fetch_max_wait_ms, 100),
                         # new streams' topics: looked for when the stream is written
                         # (ProjectionService); this age is only the fallback
                         metadata_max_age_ms=PATTERN_METADATA_MAX_AGE_MS)
        self.projected = 0

    def dead_letter_failure(self, tp: TopicPartition, record: Any, reason: str, error: str
                            ) -> Failure:
        parsed = self.runtime.topics.parse_stream_topic(tp.topic)
        return Failure("archive_rejected", self.stage, error, tp.topic, tp.partition,
                       record.offset, tp.topic, parsed[0] if parsed else None)

    async def handle(self, batches: Batches) -> None:
        topics = self.runtime.topics
        ingested: list[Ingested] = []
        traced: list[Any] = []  # the archived records' headers, with tracing on
        for tp, records in batches.items():
            for rec in records:
                item = ingest_record(topics, tp.topic, tp.partition, rec.offset, rec.timestamp,
                                     rec.value, list(rec.headers or ()))
                if item is not None:
                    ingested.append(item)
                    if tracing.ENABLED:
                        traced.append(rec.headers or ())
        if not ingested:
            return
        spans = tracing.record_spans("esb.archive", traced) if traced else []
        try:
            await self._write(ingested)
        except BaseException as exc:
            tracing.end_all(spans, exc)
            raise
        tracing.end_all(spans)

    async def _write(self, ingested: list[Ingested]) -> None:
        db = self.runtime.database
        started = datetime.now(UTC)
        events = [item.event for item in ingested]
        await EventArchive(db).insert_many(events)
        completed = datetime.now(UTC)
        history = [record for item in ingested for record in item.history]
        history += [projection_record(e, started, completed, batch_size=len(events))
                    for e in events]
        await ProcessingHistory(db).record(history)
        try:
            await ReadModelStore(db).apply(events)
        except psycopg.Error as exc:
            if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
                raise
            log.error("read models not updated for a batch of %d events: %s", len(events),
                      type(exc).__name__)
        self.projected += len(events)


class ProjectionService(Service):
    def __init__(self, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loop_ = ProjectionLoop(runtime)
        on_stream_written(runtime.catalog, self.loop_.refresh_metadata)

    async def on_start(self) -> None:
        await self.loop_.start()

    async def on_stop(self) -> None:
        await self.loop_.stop()

    @property
    def projected(self) -> int:
        return self.loop_.projected


def install(runtime: Runtime) -> ProjectionService:
    service = ProjectionService(runtime, loop=runtime.loop, beacon=runtime.beacon)
    runtime.add_child(service)
    return service
