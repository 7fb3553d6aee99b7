"""Offsets for the API: end offsets, offsets at a time, a group's committed offsets, members.

Committed offsets come from a consumer that carries the group id but never joins (Tansu cannot
answer the admin OffsetFetch; DESIGN "Known pitfalls"). Lag of a partition is its end offset
minus the committed one; a partition the group never committed counts from the subscription's
start offset (or the log start).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from esb.errors import BrokerUnavailable
from esb.kafka import topic_partitions

__all__ = ["OffsetReader", "PartitionLag", "RateTracker", "partition_lags"]


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int


def partition_lags(rows: list[PartitionLag]) -> dict[int, int]:
    """Per partition number, summed over the group's topics (lanes share partition numbers)."""
    out: dict[int, int] = {}
    for row in rows:
        out[row.partition] = out.get(row.partition, 0) + row.lag
    return out


class OffsetReader:
    def __init__(self, bootstrap_servers: list[str],
                 security: Mapping[str, Any] | None = None) -> None:
        self._bootstrap = bootstrap_servers
        self._security = dict(security or {})  # esb.kafka_security.kafka_security_options
        self._admin: AIOKafkaAdminClient | None = None

    async def _consumer(self, group_id: str | None) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, **self._security,
                                    group_id=group_id,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    fetch_max_wait_ms=50)
        try:
            await consumer.start()
        except KafkaError as exc:
            raise BrokerUnavailable(f"cannot reach Kafka: {exc}") from exc
        return consumer

    @staticmethod
    async def _partitions(consumer: AIOKafkaConsumer, topics: list[str]) -> list[TopicPartition]:
        return await topic_partitions(consumer, topics)

    @staticmethod
    async def _ends(consumer: AIOKafkaConsumer, tps: list[TopicPartition]
                    ) -> dict[TopicPartition, int]:
        """End offsets, checked against the fetch high watermark.

        Tansu (v0.6) answers ListOffsets(latest) with its count of record *batches*, not the
        next offset; a fetch response carries the true high watermark. So read one fetch from
        just below the listed end and take the larger figure (equal on a correct broker).
        """
        listed = await consumer.end_offsets(tps)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, max(0, int(listed[tp]) - 1))
        pending = {tp for tp in tps if listed[tp] > 0}
        deadline = time.monotonic() + 5.0
        while pending and time.monotonic() < deadline:
            await consumer.getmany(*pending, timeout_ms=200, max_records=1)
            pending = {tp for tp in pending if consumer.highwater(tp) is None}
        return {tp: max(int(listed[tp]), consumer.highwater(tp) or 0) for tp in tps}

    async def end_offsets(self, topics: list[str]) -> dict[str, int]:
        consumer = await self._consumer(None)
        try:
            tps = await self._partitions(consumer, topics)
            ends = await self._ends(consumer, tps) if tps else {}
            return {f"{tp.topic}:{tp.partition}": int(o) for tp, o in ends.items()}
        except KafkaError as exc:
            raise BrokerUnavailable(f"reading end offsets failed: {exc}") from exc
        finally:
            await consumer.stop()

    async def offsets_at(self, topics: list[str], timestamp_ms: int) -> dict[str, int]:
        """The first offset at or after the time per partition (the end when none is)."""
        consumer = await self._consumer(None)
        try:
            tps = await self._partitions(consumer, topics)
            if not tps:
                return {}
            found = await consumer.offsets_for_times({tp: timestamp_ms for tp in tps})
            ends = await self._ends(consumer, tps)
            return {f"{tp.topic}:{tp.partition}":
                    int(found[tp].offset) if found.get(tp) is not None else int(ends[tp])
                    for tp in tps}
        except KafkaError as exc:
            raise BrokerUnavailable(f"reading offsets by time failed: {exc}") from exc
        finally:
            await consumer.stop()

    async def clamp(self, topics: list[str], wanted: dict[int, int] | int) -> dict[str, int]:
        """Offsets per "topic:partition" from one offset for all, or one per partition number."""
        consumer = await self._consumer(None)
        try:
            tps = await self._partitions(consumer, topics)
            starts = await consumer.beginning_offsets(tps) if tps else {}
            ends = await self._ends(consumer, tps) if tps else {}
            out: dict[str, int] = {}
            for tp in tps:
                target = wanted if isinstance(wanted, int) else wanted.get(tp.partition)
                if target is None:
                    continue
                out[f"{tp.topic}:{tp.partition}"] = max(int(starts[tp]), min(int(ends[tp]),
                                                                             target))
            return out
        except KafkaError as exc:
            raise BrokerUnavailable(f"reading offsets failed: {exc}") from exc
        finally:
            await consumer.stop()

    async def group_lag(self, group_id: str, topics: list[str],
                        start_offsets: dict[str, int] | None = None) -> list[PartitionLag]:
        consumer = await self._consumer(group_id)
        try:
            tps = await self._partitions(consumer, topics)
            if not tps:
                return []
            ends = await self._ends(consumer, tps)
            starts = await consumer.beginning_offsets(tps)
            rows = []
            for tp in tps:
                committed = await consumer.committed(tp)
                base = committed
                if base is None:
                    base = (start_offsets or {}).get(f"{tp.topic}:{tp.partition}",
                                                     int(starts[tp]))
                end = int(ends[tp])
                rows.append(PartitionLag(tp.topic, tp.partition, committed, end,
                                         max(0, end - int(base))))
            return rows
        except KafkaError as exc:
            raise BrokerUnavailable(f"reading committed offsets failed: {exc}") from exc
        finally:
            await consumer.stop()

    async def head_timestamps(self, rows: list[PartitionLag], *, timeout_s: float = 2.0
                              ) -> dict[tuple[str, int], int]:
        """Timestamp (epoch ms) of the first record each lagging partition has not consumed:
        lag in seconds is now minus it. Partitions without lag, or whose record could not be
        read within ``timeout_s``, are left out."""
        wanted = {TopicPartition(r.topic, r.partition): r.end - r.lag for r in rows if r.lag > 0}
        if not wanted:
            return {}
        consumer = await self._consumer(None)
        try:
            consumer.assign(list(wanted))
            for tp, offset in wanted.items():
                consumer.seek(tp, offset)
            found: dict[tuple[str, int], int] = {}
            pending = set(wanted)
            deadline = time.monotonic() + timeout_s
            while pending and time.monotonic() < deadline:
                batches = await consumer.getmany(*pending, timeout_ms=200, max_records=1)
                for tp, records in batches.items():
                    if records:
                        found[(tp.topic, tp.partition)] = int(records[0].timestamp)
                        pending.discard(tp)
            return found
        except KafkaError as exc:
            raise BrokerUnavailable(f"reading head records failed: {exc}") from exc
        finally:
            await consumer.stop()

    async def members(self, group_id: str) -> int:
        """Members of the group right now (DescribeGroups); 0 when the broker cannot say."""
        try:
            if self._admin is None:
                self._admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap,
                                                  **self._security, request_timeout_ms=10000)
                await self._admin.start()
            described = await self._admin.describe_consumer_groups([group_id])
        except KafkaError:
            return 0
        total = 0
        for response in described:
            for group in getattr(response, "groups", []):
                if group[1] == group_id and group[0] == 0:
                    total += len(group[5])
        return total

    async def close(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await self._admin.close()
            self._admin = None


class RateTracker:
    """Consumption rate from successive committed totals (events/s between two reads)."""

    def __init__(self, max_age_s: float = 600.0) -> None:
        self._samples: dict[str, tuple[float, int]] = {}
        self._rates: dict[str, float] = {}
        self._max_age_s = max_age_s

    def observe(self, group_id: str, committed_total: int, now: float | None = None) -> float:
        moment = time.monotonic() if now is None else now
        previous = self._samples.get(group_id)
        self._samples[group_id] = (moment, committed_total)
        if previous is None or moment - previous[0] > self._max_age_s:
            return self._rates.get(group_id, 0.0)
        elapsed = moment - previous[0]
        if elapsed < 0.5:  # too close to the last read: keep the last figure
            self._samples[group_id] = previous
            return self._rates.get(group_id, 0.0)
        rate = max(0.0, (committed_total - previous[1]) / elapsed)
        self._rates[group_id] = round(rate, 3)
        return self._rates[group_id]


def committed_total(rows: list[PartitionLag]) -> int:
    return sum(r.committed or 0 for r in rows)


def as_dict(rows: list[PartitionLag]) -> list[dict[str, Any]]:
    return [{"topic": r.topic, "partition": r.partition, "committed_offset": r.committed,
             "end_offset": r.end, "lag": r.lag} for r in rows]
