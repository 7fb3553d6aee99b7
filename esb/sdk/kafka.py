"""Broker-direct consumption: a stream's lane topics read with a Kafka consumer group.

Used when the client has broker access (``ESB_BROKER``): queue groups and durable names then
mean what they say, because they *are* Kafka consumer groups —

* members of one group share the stream's partitions, so each event is handled by one member;
* offsets are committed after the handler returned, so a member that stops and starts again
  resumes after its last handled event (at-least-once: a crash mid-batch repeats that batch);
* a group's first start begins at the end of the stream, and that position is committed at
  once, so nothing published after :meth:`KafkaReader.start` returned can be skipped by a
  member that joins (or restarts) later.

Records are the bus's binary-mode CloudEvents (attributes in ``ce_*`` headers), decoded with
the CloudEvents SDK's Kafka binding. The bus's tenancy is not enforced here: topic names come
from the tenant's own stream record, but the broker's ACLs are what stop another tenant's reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from cloudevents.v1.http import CloudEvent
from cloudevents.v1.kafka import KafkaMessage, from_binary


def bootstrap_servers(broker: str) -> list[str]:
    """``kafka://host:port,…`` (the bus's ``ESB_BROKER`` spelling) or ``host:port,…``."""
    return [u.strip().removeprefix("kafka://") for u in broker.split(",") if u.strip()]


def _data(raw: bytes | str | None) -> Any:
    if raw is None or raw in (b"", ""):
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def decode(record: Any) -> CloudEvent:
    """One stream record as a CloudEvents SDK event (JSON data decoded, other data as bytes)."""
    headers = {k: v for k, v in (record.headers or ()) if k.startswith("ce_") or k == "content-type"}
    event = from_binary(KafkaMessage(headers=headers, key=record.key, value=record.value),
                        data_unmarshaller=_data)
    key = event.get("partitionkey")
    if isinstance(key, bytes):
        event["partitionkey"] = key.decode(errors="replace")
    return event


class _PinNewPartitions(ConsumerRebalanceListener):
    """On assignment, a partition the group never committed gets its current end committed."""

    def __init__(self, reader: KafkaReader) -> None:
        self.reader = reader

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.reader.commit()  # what was handled stays handled when partitions move

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self.reader.consumer
        fresh = [tp for tp in assigned if await consumer.committed(tp) is None]
        if fresh:
            await consumer.commit(await consumer.end_offsets(fresh))
        self.reader.assigned.set()


class KafkaReader:
    """``async with KafkaReader(broker, topics, group_id) as r: async for batch in r: …; await
    r.commit()``. Without a group every partition is read from its end (a plain live view)."""

    def __init__(self, broker: str, topics: Sequence[str], group_id: str | None, *,
                 rebalance_timeout_ms: int = 10000, session_timeout_ms: int = 10000,
                 heartbeat_interval_ms: int = 1000, fetch_max_wait_ms: int = 100) -> None:
        self.topics = list(topics)
        self.group_id = group_id
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers(broker), group_id=group_id,
            enable_auto_commit=False, auto_offset_reset="latest",
            fetch_max_wait_ms=fetch_max_wait_ms, rebalance_timeout_ms=rebalance_timeout_ms,
            session_timeout_ms=session_timeout_ms, heartbeat_interval_ms=heartbeat_interval_ms)
        self.assigned = asyncio.Event()
        self._handled: dict[TopicPartition, int] = {}

    async def start(self, timeout_s: float = 60.0) -> None:
        """Returns once partitions are assigned and positioned: later events are all seen."""
        await self.consumer.start()
        try:
            if self.group_id is None:
                await self.consumer.topics()  # metadata of every topic, so partitions are known
                parts = [TopicPartition(t, p) for t in self.topics
                         for p in sorted(self.consumer.partitions_for_topic(t) or ())]
                self.consumer.assign(parts)
                await self.consumer.seek_to_end(*parts)
                for tp in parts:
                    await self.consumer.position(tp)
                self.assigned.set()
            else:
                self.consumer.subscribe(self.topics, listener=_PinNewPartitions(self))
                getter = asyncio.ensure_future(self.consumer.getone())
                try:  # a poll drives the group join; the listener signals the assignment
                    await asyncio.wait_for(self.assigned.wait(), timeout_s)
                finally:
                    getter.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await getter
                for tp in self.consumer.assignment():  # a cancelled getone may have read ahead
                    committed = await self.consumer.committed(tp)
                    if committed is not None:
                        self.consumer.seek(tp, committed)
        except BaseException:
            await self.consumer.stop()
            raise

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.commit()
        await self.consumer.stop()

    async def __aenter__(self) -> KafkaReader:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def batches(self, timeout_ms: int = 200) -> AsyncIterator[list[tuple[Any, CloudEvent]]]:
        """Polls as lists of ``(record, event)``; call :meth:`handled` then :meth:`commit`."""
        while True:
            polled = await self.consumer.getmany(timeout_ms=timeout_ms)
            batch = [(r, decode(r)) for records in polled.values() for r in records]
            if batch:
                yield batch

    def handled(self, record: Any) -> None:
        """The record's handler returned: its offset may be committed."""
        self._handled[TopicPartition(record.topic, record.partition)] = record.offset + 1

    async def commit(self) -> None:
        if self.group_id is None or not self._handled:
            return
        owned = self.consumer.assignment()
        offsets = {tp: off for tp, off in self._handled.items() if tp in owned}
        self._handled.clear()
        if offsets:
            await self.consumer.commit(offsets)
