"""Dead-letter indexer: a Faust agent that copies DLQ topic records into the PostgreSQL index.

Low volume by nature, so a Faust stream is the right tool here: batches of up to 500 records, one
idempotent upsert per batch, offsets acknowledged only after the write. If the database is down the
agent retries with backoff instead of dropping records.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from esb.deadletter_store import DeadLetterRow
from esb.errors import StorageUnavailable

log = logging.getLogger(__name__)


def install(app: Any) -> Any:
    runtime = app.runtime
    topic = app.topic(runtime.topics.dead_letters, key_type=bytes, value_type=bytes,
                      key_serializer="raw", value_serializer="raw")

    @app.agent(topic, name="esb.deadletter-indexer")
    async def index_dead_letters(stream: Any) -> None:
        async for events in stream.take_events(500, within=0.5):
            rows = [DeadLetterRow(e.message.topic, e.message.partition, e.message.offset,
                                  e.message.key, e.message.value, list(e.message.headers or ()))
                    for e in events]
            delay = 0.5
            while True:
                try:
                    assert runtime.dead_letters is not None
                    await runtime.dead_letters.upsert(rows)
                    break
                except StorageUnavailable as exc:
                    log.warning("dead-letter index unavailable (%s); retrying in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)

    return index_dead_letters
