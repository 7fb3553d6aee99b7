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

import asyncio
import logging
import re
from datetime import UTC, datetime
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from esb.errors import StorageUnavailable
from esb.readside import EventArchive, ProcessingHistory, ReadModelStore
from esb.readside.ingest import Ingested, ingest_record, projection_record
from esb.runtime import Runtime
from esb.topics import LANES

log = logging.getLogger(__name__)

MAX_RECORDS = 2000


def lane_pattern(prefix: str) -> str:
    lanes = "|".join(p.lane for p in LANES)
    return rf"^{re.escape(prefix)}\.[^.]+\.[^.]+\.({lanes})$"


class ProjectionService(Service):
    def __init__(self, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runtime = runtime
        self.consumer: AIOKafkaConsumer | None = None
        self.projected = 0

    async def on_start(self) -> None:
        s = self.runtime.settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers,
            group_id=f"{s.app_id}-projection",
            client_id=f"{s.app_id}-projection",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=MAX_RECORDS,
            fetch_max_wait_ms=max(s.fetch_max_wait_ms, 100),
            metadata_max_age_ms=2000,  # how soon a new stream's topics are noticed
            rebalance_timeout_ms=s.group_rebalance_timeout_ms,
            session_timeout_ms=s.group_session_timeout_ms,
            heartbeat_interval_ms=s.group_heartbeat_interval_ms,
        )
        await self.consumer.start()
        self.consumer.subscribe(pattern=lane_pattern(s.topic_prefix))
        self.add_future(self._run())

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()

    async def _run(self) -> None:
        assert self.consumer is not None
        while not self.should_stop:
            try:
                batches = await self.consumer.getmany(timeout_ms=500)
                if not batches:
                    continue
                await self._project_until_stored(batches)
                await self.consumer.commit(
                    {tp: records[-1].offset + 1 for tp, records in batches.items()})
            except KafkaError as exc:  # e.g. commit during a rebalance: the batch is replayed
                log.warning("projection: %s; continuing from committed offsets", exc)
                await asyncio.sleep(1.0)

    async def _project_until_stored(self, batches: dict[TopicPartition, list[Any]]) -> None:
        delay = 0.5
        while not self.should_stop:
            try:
                await self.project(batches)
                return
            except StorageUnavailable as exc:
                log.warning("read side unavailable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def project(self, batches: dict[TopicPartition, list[Any]]) -> None:
        topics = self.runtime.topics
        ingested: list[Ingested] = []
        for tp, records in batches.items():
            for rec in records:
                item = ingest_record(topics, tp.topic, tp.partition, rec.offset, rec.timestamp,
                                     rec.value, list(rec.headers or ()))
                if item is not None:
                    ingested.append(item)
        if not ingested:
            return
        db = self.runtime.database
        started = datetime.now(UTC)
        events = [item.event for item in ingested]
        try:
            await EventArchive(db).insert_many(events)
        except psycopg.Error as exc:  # availability errors arrive as StorageUnavailable
            events = await self._insert_one_by_one(events, exc)
        completed = datetime.now(UTC)
        history = [record for item in ingested for record in item.history]
        history += [projection_record(e, started, completed, batch_size=len(events))
                    for e in events]
        await ProcessingHistory(db).record(history)
        try:
            await ReadModelStore(db).apply(events)
        except psycopg.Error as exc:
            log.error("read models not updated for a batch of %d events: %s", len(events), exc)
        self.projected += len(events)

    async def _insert_one_by_one(self, events: list[Any], first_error: Exception) -> list[Any]:
        """A batch the database refused: store what it accepts, log and skip the rest."""
        log.warning("archive batch rejected (%s); inserting one by one", first_error)
        archive = EventArchive(self.runtime.database)
        stored = []
        for event in events:
            try:
                await archive.insert_many([event])
                stored.append(event)
            except psycopg.Error as exc:
                log.error("cannot archive event %s of %s: %s", event.event_id, event.tenant_id,
                          exc)
        return stored


def install(runtime: Runtime) -> ProjectionService:
    service = ProjectionService(runtime, loop=runtime.loop, beacon=runtime.beacon)
    runtime.add_child(service)
    return service
