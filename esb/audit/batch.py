"""One writer per audit log in a replica: bursts of appends become a few transactions.

Appends to one log are serialised by its head row (gapless sequence numbers), so with one
transaction per entry a burst of N concurrent changes in one tenant held N pooled connections
waiting on one lock, and past the pool's size the waits timed out (about 150 concurrent
changes). Here a caller queues its record and awaits its entry; the log's writer takes
everything queued (up to ``max_batch``), appends it in one transaction, in queue order, and
answers each caller with its sequence number (or the batch's error). Only the writer holds a
connection, and only while appending.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

from esb.audit.entry import AuditRecord

AppendMany = Callable[[str, Sequence[AuditRecord]], Awaitable[list[int]]]
MAX_BATCH = 500


class AppendBatcher:
    """``await batcher.append(record)`` -> its sequence number; one writer task per log."""

    def __init__(self, append_many: AppendMany, *, max_batch: int = MAX_BATCH) -> None:
        self._append_many = append_many
        self.max_batch = max_batch
        self._queues: dict[str, list[tuple[AuditRecord, asyncio.Future[int]]]] = {}
        self._writers: dict[str, asyncio.Task[None]] = {}
        #: batch sizes written (for tests and figures; the last 1000)
        self.batch_sizes: list[int] = []

    async def append(self, record: AuditRecord) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)  # nobody may be left awaiting a failure
        self._queues.setdefault(record.tenant, []).append((record, future))
        if record.tenant not in self._writers:
            self._writers[record.tenant] = asyncio.ensure_future(self._drain(record.tenant))
        # a caller that goes away does not take its entry with it: the writer still appends it
        return await asyncio.shield(future)

    async def _drain(self, log: str) -> None:
        try:
            while self._queues.get(log):
                queue = self._queues[log]
                batch, queue[:] = queue[:self.max_batch], queue[self.max_batch:]
                self.batch_sizes = [*self.batch_sizes[-999:], len(batch)]
                try:
                    seqs = await self._append_many(log, [record for record, _ in batch])
                except Exception as exc:  # every caller of the batch gets the failure
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), seq in zip(batch, seqs, strict=True):
                    if not future.done():
                        future.set_result(seq)
        finally:  # no await between the empty check above and here: no append is stranded
            self._writers.pop(log, None)
            if not self._queues.get(log):
                self._queues.pop(log, None)

    async def close(self) -> None:
        """Wait for the writers to finish what is queued."""
        for task in list(self._writers.values()):
            with contextlib.suppress(Exception):
                await task


def _retrieved(future: asyncio.Future[int]) -> None:
    if not future.cancelled():
        future.exception()
