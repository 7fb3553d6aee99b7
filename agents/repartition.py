"""The re-key stage of a keyed job: source records copied to the job's repartition topic.

Each copy lands on the partition of its job key (group, join or correlation key), so the job's
runner sees every event of a key in one state (see :mod:`esb.processing.repartition` for why,
for how the runner drops the copies this stage re-emits after a crash, and for the progress
records that carry event time across the merge). Per poll: copy, await every ack, report
progress, commit the source offsets. A record whose key cannot be computed (not a CloudEvent,
an expression error) keeps its source partition number; the runner then applies the job's
error strategy to it, so nothing is dropped here.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import TopicPartition

from agents.job_consumer import JobConsumer, JobWorker
from esb.processing.fields import event_time_ms
from esb.processing.jobs import Job
from esb.processing.repartition import (
    Origin,
    Reports,
    progress_record,
    repartition_topic,
    with_origin,
)
from esb.processing.wire import event_from_record


class RepartitionRunner(JobConsumer):
    def __init__(self, worker: JobWorker, job: Job, index: int) -> None:
        runtime = worker.runtime
        super().__init__(worker, job, index,
                         group_id=f"{runtime.settings.app_id}.proc.{job.job_id}.rekey",
                         topics=list(job.sources))
        self.target = repartition_topic(runtime.topics.prefix, job.job_id)
        self.latest: dict[TopicPartition, int] = {}  # latest event time copied, per source
        self.caught_up_since: dict[TopicPartition, float] = {}
        self.idle_after_s = runtime.settings.processor_source_idle_ms / 1000
        self.reported: Reports | None = None

    def revoked(self, partitions: set[int]) -> None:
        self.latest = {tp: t for tp, t in self.latest.items() if tp in self.assigned}
        self.reported = None

    async def on_rewind(self) -> None:
        self.latest, self.reported = {}, None  # copies past the commit may not have landed
        await super().on_rewind()

    def route(self, tp: TopicPartition, record: Any) -> tuple[bytes | None, int | None]:
        """``(key, partition)`` of a copy: by job key, else the source partition number."""
        try:
            event = event_from_record(record.headers, record.value)
            key = self.job.handler.routing_key(event, self.job.sources[tp.topic])
            timestamp = event_time_ms(event)
            self.latest[tp] = max(self.latest.get(tp, timestamp), timestamp)
        except Exception:
            key = None
        if key is None:
            return record.key, tp.partition % self.job.partitions
        return key.encode(), None

    async def handle(self, batches: dict[TopicPartition, list[Any]]) -> None:
        """Copy, await every ack, report progress; the kit then commits the source offsets."""
        producers = self.worker.runtime.producers
        futures: list[asyncio.Future[Any]] = []
        for tp, records in batches.items():
            floor = records[0].offset  # every earlier record was copied and acknowledged
            for record in records:
                key, partition = self.route(tp, record)
                origin = Origin(tp.topic, tp.partition, record.offset, floor)
                futures.append(await producers.send(
                    self.target, record.value, key=key, partition=partition,
                    headers=with_origin(record.headers, origin)))
        await asyncio.gather(*futures)
        await self.report_progress()

    async def on_idle(self) -> None:
        async with self.lock:
            await self.report_progress()

    async def idle(self, tp: TopicPartition, now: float) -> bool:
        """Caught up with the source for ``ESB_PROCESSOR_SOURCE_IDLE_MS`` (not just between
        two batches of a producer)."""
        assert self.consumer is not None
        highwater = self.consumer.highwater(tp)
        if highwater is None or await self.consumer.position(tp) < highwater:
            self.caught_up_since.pop(tp, None)
            return False
        return now - self.caught_up_since.setdefault(tp, now) >= self.idle_after_s

    async def report_progress(self) -> None:
        """Tell every repartition partition how far each of our sources has got, if changed.

        Sent after the copies' acks, so a progress record never overtakes a copy it covers.
        """
        assert self.consumer is not None
        reports: Reports = {}
        now = time.monotonic()
        for tp in sorted(self.assigned):
            reports[f"{tp.topic}:{tp.partition}"] = [self.latest.get(tp),
                                                     await self.idle(tp, now)]
        if not reports or reports == self.reported:
            return
        value, headers = progress_record(reports)
        producers = self.worker.runtime.producers
        await asyncio.gather(*[
            await producers.send(self.target, value, headers=headers, partition=partition)
            for partition in range(self.job.partitions)])
        self.reported = reports
