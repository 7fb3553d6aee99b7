"""What the two consumers of a processing job share on top of the consumer kit: the job, its
worker, and partition-number hooks (a job's state is per partition number, whatever the topic).

The loop itself — poll, rewind, back off, set poisoned records aside — is the kit's
(:mod:`esb.consumer_kit`); a job's stages only say how a poll is applied and saved.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiokafka import TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from esb.consumer_kit import ConsumerLoop, StopLoop
from esb.deadletter import Failure
from esb.processing.jobs import Job
from esb.processing.statestore import LocalStateStore


class JobWorker(Protocol):
    """What a job's consumers need from the worker that runs them (``agents.processors``)."""

    runtime: Any
    reader: Any
    store: LocalStateStore

    async def fail(self, job: Job, error: str) -> None: ...


class StopJob(StopLoop):
    """ERROR strategy STOP: the job halts at the failing input and is marked FAILED."""


class JobConsumer(ConsumerLoop):
    """One consumer of one stage of one job on this replica."""

    stage = "processor"

    def __init__(self, worker: JobWorker, job: Job, index: int, *, group_id: str,
                 topics: list[str]) -> None:
        super().__init__(worker.runtime, name=f"{group_id}.{index}", group_id=group_id,
                         topics=topics, poll_timeout_ms=200, client_id=f"{group_id}.{index}",
                         max_poll_records=2000, fetch_max_bytes=32 << 20,
                         partition_assignment_strategy=(RangePartitionAssignor,))
        self.worker = worker
        self.job = job
        self.index = index

    async def on_halt(self, exc: StopLoop) -> None:
        await self.worker.fail(self.job, str(exc))

    def dead_letter_failure(self, tp: TopicPartition, record: Any, reason: str, error: str
                            ) -> Failure:
        return Failure(reason, self.stage, error, tp.topic, tp.partition, record.offset,
                       tp.topic, self.job.tenant)

    def on_revoked(self, partitions: set[TopicPartition]) -> None:
        self.revoked({tp.partition for tp in partitions})

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        await self.restore({tp.partition for tp in partitions})

    async def on_rewind(self) -> None:
        await self.restore({tp.partition for tp in self.assigned})

    def revoked(self, partitions: set[int]) -> None:
        """Drop what this consumer holds for partitions it no longer owns."""

    async def restore(self, partitions: set[int]) -> None:
        """Load what this consumer needs for the partitions it now owns."""
