"""The consumer kit's failure policy, on an in-memory consumer (a pure unit: the broker-backed
behaviour is in tests/integration/spine/test_hostile_records.py).

- a record that fails on its own is set aside and committed past; the others are handled;
- an infrastructure failure retries the same records, skips nothing and shows on the board;
- a stage's StopLoop ends the loop where it stands.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from esb.consumer_kit import ConsumerLoop, HealthBoard, StopLoop, is_infrastructure
from esb.errors import BrokerUnavailable, StorageUnavailable

TP = TopicPartition("esb.t.s.normal", 0)


@dataclass
class Rec:
    offset: int
    value: bytes
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp: int = 0


class MemoryConsumer:
    """Just the consumer surface the kit uses: one partition, a position, a committed offset."""

    def __init__(self, values: list[bytes], batch: int = 4) -> None:
        self.log = [Rec(i, v) for i, v in enumerate(values)]
        self.position = 0
        self.committed_offset: int | None = None
        self.batch = batch

    async def getmany(self, timeout_ms: int = 0) -> dict[TopicPartition, list[Rec]]:
        await asyncio.sleep(0)
        records = self.log[self.position:self.position + self.batch]
        self.position += len(records)
        return {TP: records} if records else {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed_offset = offsets[TP]

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.committed_offset

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.position = offset

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        self.position = 0

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def paused(self) -> set[TopicPartition]:
        return set()


class Stage(ConsumerLoop):
    stage = "test"

    def __init__(self, consumer: MemoryConsumer, failures: dict[bytes, list[BaseException]]
                 ) -> None:
        runtime = SimpleNamespace(consumer_board=HealthBoard())
        super().__init__(runtime, name="test-loop", group_id="g")
        self.consumer = consumer  # type: ignore[assignment]
        self.assigned = {TP}
        self.failures = failures
        self.handled: list[bytes] = []
        self.set_aside: list[tuple[int, str]] = []

    async def handle(self, batches: dict[TopicPartition, list[Any]]) -> None:
        for record in batches[TP]:
            queue = self.failures.get(record.value)
            if queue:
                raise queue.pop(0)
        self.handled.extend(r.value for r in batches[TP])

    async def quarantine(self, tp: TopicPartition, record: Any, exc: BaseException) -> None:
        self.set_aside.append((record.offset, type(exc).__name__))


async def run(stage: Stage, steps: int) -> None:
    import esb.consumer_kit as kit

    original = kit.BACKOFF_FIRST_S
    kit.BACKOFF_FIRST_S = 0.0
    stage._backoff = 0.0
    try:
        for _ in range(steps):
            await stage.run_once()
    finally:
        kit.BACKOFF_FIRST_S = original


async def test_a_poison_record_is_set_aside_and_every_other_record_is_handled() -> None:
    values = [f"e{i}".encode() for i in range(10)]
    poison = {b"e5": [KeyError("bad header")] * 10}  # fails every time: it is the record
    stage = Stage(MemoryConsumer(values), poison)
    await run(stage, 12)
    assert stage.set_aside == [(5, "KeyError")]
    assert sorted(set(stage.handled)) == sorted(v for v in values if v != b"e5")
    assert stage.consumer.committed_offset == 10
    assert stage.health.snapshot()["ok"]


async def test_a_transient_record_failure_sets_nothing_aside() -> None:
    values = [f"e{i}".encode() for i in range(6)]
    stage = Stage(MemoryConsumer(values), {b"e2": [ValueError("once")]})
    await run(stage, 8)
    assert stage.set_aside == []
    assert set(stage.handled) == set(values)


@pytest.mark.parametrize("outage", [BrokerUnavailable("down"), StorageUnavailable("down"),
                                    ConnectionRefusedError()])
async def test_an_outage_retries_the_same_records_and_skips_nothing(outage: Exception) -> None:
    values = [f"e{i}".encode() for i in range(8)]
    stage = Stage(MemoryConsumer(values), {b"e3": [outage, outage, outage]})
    await run(stage, 2)
    failing = stage.health.snapshot()
    assert not failing["ok"] and "test-loop" in failing["failing"] and failing["loops"] == 1
    await run(stage, 10)
    assert stage.set_aside == []  # an outage never dead-letters a record
    assert set(stage.handled) == set(values)
    assert stage.consumer.committed_offset == 8
    assert stage.health.snapshot()["ok"]


async def test_stop_loop_ends_the_loop_without_committing() -> None:
    stage = Stage(MemoryConsumer([b"a", b"b"]), {b"b": [StopLoop("halt")]})
    with pytest.raises(StopLoop):
        await run(stage, 3)
    assert stage.consumer.committed_offset is None


def test_what_counts_as_infrastructure() -> None:
    import psycopg

    assert is_infrastructure(BrokerUnavailable("x"))
    assert is_infrastructure(psycopg.OperationalError("x"))
    assert is_infrastructure(TimeoutError())
    assert not is_infrastructure(psycopg.DataError("x"))
    assert not is_infrastructure(ValueError("x"))
    assert not is_infrastructure(KeyError("x"))
