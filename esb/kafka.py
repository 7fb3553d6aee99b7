"""Kafka adapters: a producer pool (one producer per compression codec) and topic administration.

aiokafka compresses per producer, not per topic, so each stream's codec gets its own producer; they
share nothing but the bootstrap servers. Library errors are translated into BrokerUnavailable here,
where they enter our code, so callers see one retriable error type.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.structs import RecordMetadata

from esb.errors import BrokerUnavailable, ValidationFailed
from esb.kafka_security import kafka_client_options
from esb.settings import Settings

log = logging.getLogger(__name__)

COMPRESSION = {"NONE": None, "GZIP": "gzip", "SNAPPY": "snappy", "LZ4": "lz4", "ZSTD": "zstd"}

Headers = Sequence[tuple[str, bytes]]


def compression_codec(name: str | None) -> str | None:
    key = (name or "NONE").upper()
    if key not in COMPRESSION:
        raise ValidationFailed(
            f"compression_type must be one of {', '.join(COMPRESSION)}",
            errors=[{"path": "$.compression_type", "message": f"unknown codec {name!r}"}],
        )
    return COMPRESSION[key]


class ProducerPool:
    """Lazily started producers keyed by codec; ``send`` returns the broker-ack future."""

    def __init__(self, settings: Settings, *, linger_ms: int | None = None) -> None:
        self._settings = settings
        self._linger_ms = settings.producer_linger_ms if linger_ms is None else linger_ms
        self._producers: dict[str | None, AIOKafkaProducer] = {}
        self._lock = asyncio.Lock()

    async def get(self, codec: str | None = None) -> AIOKafkaProducer:
        producer = self._producers.get(codec)
        if producer is not None:
            return producer
        async with self._lock:
            if codec not in self._producers:
                producer = AIOKafkaProducer(
                    **kafka_client_options(self._settings),
                    client_id=f"{self._settings.app_id}-{codec or 'plain'}",
                    acks="all",
                    compression_type=codec,
                    linger_ms=self._linger_ms,
                    max_batch_size=self._settings.producer_max_batch_bytes,
                    max_request_size=max(self._settings.max_event_bytes * 2, 1 << 20),
                    request_timeout_ms=30000,
                )
                try:
                    await producer.start()
                except KafkaError as exc:
                    await producer.stop()
                    raise BrokerUnavailable(f"cannot connect to Kafka: {exc}") from exc
                self._producers[codec] = producer
            return self._producers[codec]

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Headers | None = None,
        codec: str | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Append to the producer's batch; await the returned future for the broker's ack."""
        producer = await self.get(codec)
        try:
            return await producer.send(
                topic, value, key=key, headers=list(headers or ()), partition=partition
            )
        except KafkaError as exc:
            raise BrokerUnavailable(f"Kafka rejected the record for {topic}: {exc}") from exc

    async def send_and_wait(self, topic: str, value: bytes | None, **kwargs: Any) -> RecordMetadata:
        future = await self.send(topic, value, **kwargs)
        return await acked(future, topic)

    async def flush(self) -> None:
        await asyncio.gather(*(p.flush() for p in self._producers.values()))

    async def stop(self) -> None:
        producers, self._producers = list(self._producers.values()), {}
        await asyncio.gather(*(p.stop() for p in producers), return_exceptions=True)


async def acked(future: asyncio.Future[RecordMetadata], topic: str) -> RecordMetadata:
    try:
        return await future
    except KafkaError as exc:
        raise BrokerUnavailable(f"Kafka did not acknowledge the record for {topic}: {exc}") from exc


async def acked_all(futures: Sequence[asyncio.Future[RecordMetadata]], topic: str,
                    ) -> list[RecordMetadata]:
    """``acked`` for a batch: one gather over the producer's own futures (no task per record)."""
    try:
        return list(await asyncio.gather(*futures))
    except KafkaError as exc:
        raise BrokerUnavailable(f"Kafka did not acknowledge the record for {topic}: {exc}") from exc


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1
    configs: dict[str, str] = field(default_factory=dict)


class TopicAdmin:
    """Creates topics idempotently and checks requests against the real cluster."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: AIOKafkaAdminClient | None = None
        self._lock = asyncio.Lock()

    async def _admin(self) -> AIOKafkaAdminClient:
        async with self._lock:
            if self._client is None:
                client = AIOKafkaAdminClient(
                    **kafka_client_options(self._settings), request_timeout_ms=15000
                )
                try:
                    await client.start()
                except KafkaError as exc:
                    await client.close()
                    raise BrokerUnavailable(f"cannot reach Kafka admin API: {exc}") from exc
                self._client = client
            return self._client

    async def broker_count(self) -> int:
        admin = await self._admin()
        try:
            cluster = await admin.describe_cluster()
        except KafkaError as exc:
            raise BrokerUnavailable(f"describe_cluster failed: {exc}") from exc
        return len(cluster.get("brokers", [])) or 1

    async def ensure_topics(self, specs: Iterable[TopicSpec]) -> None:
        specs = list(specs)
        if not specs:
            return
        admin = await self._admin()
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if not missing:
            return
        new = [
            NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=dict(s.configs))
            for s in missing
        ]
        try:
            await admin.create_topics(new, timeout_ms=15000)
        except TopicAlreadyExistsError:
            pass
        except KafkaError as exc:
            raise BrokerUnavailable(f"creating topics failed: {exc}") from exc
        await self._await_leaders({s.name: s.partitions for s in missing})

    async def _await_leaders(self, partitions: dict[str, int], timeout_s: float = 10.0) -> None:
        """Return once every partition of the new topics has a leader, so that a publish right
        after the create is not parked in the producer waiting for one (it then fails after the
        whole request timeout). Best effort: a broker still electing after ``timeout_s`` is
        left to the producer's own retries."""
        admin = await self._admin()
        deadline = asyncio.get_running_loop().time() + timeout_s
        pending = dict(partitions)
        while pending and asyncio.get_running_loop().time() < deadline:
            try:
                described = await admin.describe_topics(list(pending))
            except KafkaError:
                described = []
            for item in described:
                led = [p for p in item.get("partitions", []) if p.get("leader", -1) >= 0]
                if not item.get("error_code") and len(led) >= pending.get(item.get("topic"), 0):
                    pending.pop(item["topic"], None)
            if pending:
                await asyncio.sleep(0.1)

    async def partitions_for(self, topic: str) -> int | None:
        admin = await self._admin()
        try:
            described = await admin.describe_topics([topic])
        except KafkaError as exc:
            raise BrokerUnavailable(f"describe_topics failed: {exc}") from exc
        for item in described:
            if item.get("topic") == topic and not item.get("error_code"):
                return len(item.get("partitions", []))
        return None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


async def topic_partitions(consumer: Any, topics: Iterable[str]) -> list[Any]:
    """Every partition of ``topics`` as TopicPartitions, refreshing metadata for unknown topics
    (aiokafka has no public call for that; a topic created a moment ago is otherwise missing)."""
    from aiokafka import TopicPartition

    out = []
    for topic in topics:
        parts = consumer.partitions_for_topic(topic)
        if parts is None:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        out.extend(TopicPartition(topic, p) for p in sorted(parts))
    return out
