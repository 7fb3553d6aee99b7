"""The durable embedded broker (Tansu s3 engine on our loopback object store) serves a tailing
consumer promptly, with a bucket that is not empty, and knows its end offsets after a restart
(ADR 0014). Before the listing index and TCP_NODELAY, records arrived 4-9 s late and later
with every record (each fetch walked the whole bucket and paid a 40 ms delayed ACK per request).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from esb.embedded import EmbeddedBroker

pytestmark = pytest.mark.integration

RECORDS = 30


async def _fill(bootstrap: str, batches: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    try:
        for start in range(0, batches, 8):  # eight in flight: one batch object each
            await asyncio.gather(*(producer.send_and_wait(f"other{i % 4}", b"x" * 200)
                                   for i in range(start, min(batches, start + 8))))
    finally:
        await producer.stop()


async def _tail(bootstrap: str, topic: str) -> list[float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=100,
                                auto_offset_reset="earliest")
    await consumer.start()
    consumer.assign([TopicPartition(topic, 0)])
    sent: dict[int, float] = {}
    late: list[float] = []

    async def consume() -> None:
        async for msg in consumer:
            late.append(time.perf_counter() - sent[int(msg.value or b"0")])
            if len(late) == RECORDS:
                return

    task = asyncio.create_task(consume())
    try:
        for i in range(RECORDS):
            sent[i] = time.perf_counter()
            await producer.send_and_wait(topic, str(i).encode(), partition=0)
            await asyncio.sleep(0.05)
        await asyncio.wait_for(task, 30)
    finally:
        task.cancel()
        await producer.stop()
        await consumer.stop()
    return late


async def _end_offset(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


async def test_a_tailing_consumer_keeps_up_and_end_offsets_survive_a_restart(
        tmp_path: Path) -> None:
    broker = EmbeddedBroker(storage="s3", data_dir=tmp_path / "broker",
                            log_path=tmp_path / "broker.log").start()
    bootstrap = broker.url.removeprefix("kafka://")
    try:
        await _fill(bootstrap, 1500)
        late = sorted(await _tail(bootstrap, "tailed"))
    finally:
        broker.stop()
    assert len(late) == RECORDS
    p95 = late[int(0.95 * (RECORDS - 1))]
    # memory answers in tens of ms here; the old store took seconds, growing with every record
    assert p95 < 1.0, f"p95 {p95:.2f}s, latencies {[round(x, 2) for x in late]}"

    broker = EmbeddedBroker(storage="s3", data_dir=tmp_path / "broker",
                            log_path=tmp_path / "broker.log").start()
    try:
        assert await _end_offset(broker.url.removeprefix("kafka://"), "tailed") == RECORDS
    finally:
        broker.stop()
