"""Dead-letter indexer: copies DLQ topic records into the PostgreSQL index.

On the consumer kit like every other loop: batches of up to 500 records, one idempotent upsert
per poll, offsets committed only after the write; a database outage backs off and retries the
same records. Its records already are dead letters, so one the index cannot hold even on its own
is not dead-lettered again (that would loop): it is logged and counted, and stays in the DLQ
topic, which keeps everything (``retention.ms=-1``).
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import TopicPartition
from mode import Service

from esb.consumer_kit import Batches, ConsumerLoop, describe
from esb.deadletter_store import DeadLetterRow, count_dead_letters
from esb.observability import tracing
from esb.observability.deadletters import dead_letter_spans

log = logging.getLogger(__name__)


class DeadLetterIndexer(ConsumerLoop):
    stage = "deadletter-index"

    def __init__(self, runtime: Any) -> None:
        group = f"{runtime.settings.app_id}-deadletter-indexer"
        super().__init__(runtime, name=group, group_id=group,
                         topics=[runtime.topics.dead_letters], poll_timeout_ms=500,
                         max_poll_records=500)

    async def handle(self, batches: Batches) -> None:
        rows = [DeadLetterRow(tp.topic, tp.partition, rec.offset, rec.key, rec.value,
                              list(rec.headers or ()))
                for tp, records in batches.items() for rec in records]
        assert self.runtime.dead_letters is not None
        spans = dead_letter_spans(row.headers for row in rows)  # [] with tracing off
        try:
            await self.runtime.dead_letters.upsert(rows)
        except BaseException as exc:
            tracing.end_all(spans, exc)
            raise
        tracing.end_all(spans)
        count_dead_letters(rows)

    async def quarantine(self, tp: TopicPartition, record: Any, exc: BaseException) -> None:
        log.error("dead letter %s:%d@%d cannot be indexed (%s); it stays in the topic",
                  tp.topic, tp.partition, record.offset, describe(exc))


class DeadLetterIndexService(Service):
    def __init__(self, runtime: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.indexer = DeadLetterIndexer(runtime)

    async def on_start(self) -> None:
        await self.indexer.start()

    async def on_stop(self) -> None:
        await self.indexer.stop()


def install(app: Any) -> DeadLetterIndexService:
    runtime = app.runtime
    service = DeadLetterIndexService(runtime, loop=runtime.loop, beacon=runtime.beacon)
    runtime.add_child(service)
    app.deadletter_index = service  # its group's lag is scanned (esb.monitoring.groups)
    return service
