"""The consumer life cycle every processing stage shares: group, loop, rewind on failure.

A stage subclasses :class:`JobConsumer` and implements :meth:`step` (one poll: apply, produce,
await acks, commit). A failed step rewinds the consumer to its committed offsets, so the inputs
of an unfinished poll are read again; the stage's own dedup makes that harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError

from esb.errors import EsbError
from esb.kafka import seek_to_committed
from esb.processing.jobs import Job

if TYPE_CHECKING:
    from agents.processors import ProcessingWorker

log = logging.getLogger(__name__)


class StopJob(Exception):
    """ERROR strategy STOP: the job halts at the failing input and is marked FAILED."""


class JobConsumer(ConsumerRebalanceListener):
    """One consumer of one stage of one job on this replica."""

    def __init__(self, worker: ProcessingWorker, job: Job, index: int, *, group_id: str,
                 topics: list[str]) -> None:
        self.worker = worker
        self.job = job
        self.index = index
        self.group_id = group_id
        self.topics = topics
        self.consumer: AIOKafkaConsumer | None = None
        self.task: asyncio.Future[None] | None = None
        self.stopping = False
        self.lock = asyncio.Lock()  # a poll in progress finishes before partitions move
        self.assigned: set[TopicPartition] = set()

    async def start(self) -> None:
        s = self.worker.runtime.settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers, group_id=self.group_id,
            client_id=f"{self.group_id}.{self.index}", enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_records=2000,
            fetch_max_wait_ms=s.fetch_max_wait_ms, fetch_max_bytes=32 << 20,
            partition_assignment_strategy=(RangePartitionAssignor,),
            rebalance_timeout_ms=s.group_rebalance_timeout_ms,
            session_timeout_ms=s.group_session_timeout_ms,
            heartbeat_interval_ms=s.group_heartbeat_interval_ms)
        await self.consumer.start()
        self.consumer.subscribe(self.topics, listener=self)
        self.task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        self.stopping = True
        if self.task is not None and self.task is not asyncio.current_task():
            try:
                await asyncio.wait_for(asyncio.shield(self.task), 15.0)
            except Exception:
                self.task.cancel()
                with contextlib.suppress(BaseException):
                    await self.task
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                await self.consumer.stop()

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self.lock:  # waits for the poll in progress to be saved and committed
            self.assigned -= set(revoked)
            self.revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        async with self.lock:
            self.assigned = set(assigned)
            await self.restore({tp.partition for tp in self.assigned})

    def revoked(self, partitions: set[int]) -> None:
        """Drop what this consumer holds for partitions it no longer owns."""

    async def restore(self, partitions: set[int]) -> None:
        """Load what this consumer needs for the partitions it now owns."""

    async def _loop(self) -> None:
        while not self.stopping:
            try:
                await self.step()
            except StopJob as exc:
                self.stopping = True
                await self.worker.fail(self.job, str(exc))
            except (KafkaError, EsbError) as exc:
                log.warning("%s: %s; rewinding to committed offsets", self.group_id, exc)
                await self.rewind()
                await asyncio.sleep(1.0)
            except Exception:
                log.exception("%s: unexpected error; rewinding", self.group_id)
                await self.rewind()
                await asyncio.sleep(1.0)

    async def step(self) -> None:
        raise NotImplementedError

    async def rewind(self) -> None:
        """After a failure: what this consumer holds back to its saved form, position back to
        the committed offsets."""
        if self.consumer is None:
            return
        with contextlib.suppress(Exception):
            async with self.lock:
                await self.restore({tp.partition for tp in self.assigned})
                await seek_to_committed(self.consumer)
