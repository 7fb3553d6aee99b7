"""Metadata catalog: streams, schemas, subscriptions … kept in one compacted, single-partition topic.

Like Confluent Schema Registry's ``_schemas`` topic, the log is the source of truth and every replica
reads all of it into memory, so reads never touch a database and any replica can answer. Writes go
through the log: a writer produces a record and waits until its own reader has applied that offset,
then reads the outcome the reducer decided. Because every replica applies the same records in the
same order, "create if absent" is linearizable without a leader: the first create in log order wins
and a later one learns it lost (409). The loser then re-asserts the winner under the key, so that
compaction (which keeps the last record per key) can never resurrect the losing value.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from esb import ids
from esb.errors import BrokerUnavailable, Timeout
from esb.kafka import ProducerPool, TopicAdmin, TopicSpec
from esb.kafka_security import kafka_client_options
from esb.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the reducer decided for one write.

    ``status`` is one of ``created``, ``exists``, ``updated``, ``deleted``, ``missing``.
    """

    status: str
    data: dict[str, Any] | None


class KindReducer(Protocol):
    def apply(self, state: CatalogState, key: str, record: dict[str, Any] | None) -> Outcome: ...


class DefaultReducer:
    """create = insert if absent; put = upsert; delete = remove. A tombstone removes the key."""

    def apply(self, state: CatalogState, key: str, record: dict[str, Any] | None) -> Outcome:
        current = state.items.get(key)
        if record is None:
            state.items.pop(key, None)
            return Outcome("deleted", None)
        op = record.get("op", "put")
        if op == "create":
            if current is not None:
                return Outcome("exists", current)
            state.items[key] = record["data"]
            return Outcome("created", record["data"])
        if op == "delete":
            if current is None:
                return Outcome("missing", None)
            del state.items[key]
            return Outcome("deleted", current)
        state.items[key] = record["data"]
        return Outcome("updated", record["data"])


def catalog_key(kind: str, tenant: str, name: str) -> str:
    return f"{kind}/{tenant}/{name}"


class CatalogState:
    """The pure, in-memory materialisation of the metadata log."""

    MAX_OUTCOMES = 10_000

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.outcomes: OrderedDict[str, Outcome] = OrderedDict()
        self._reducers: dict[str, KindReducer] = {}
        self._default = DefaultReducer()

    def register(self, kind: str, reducer: KindReducer) -> None:
        self._reducers[kind] = reducer

    def apply(self, key: str, record: dict[str, Any] | None) -> Outcome:
        kind = key.split("/", 1)[0]
        outcome = self._reducers.get(kind, self._default).apply(self, key, record)
        request_id = record.get("request_id") if record else None
        if request_id:
            self.outcomes[request_id] = outcome
            if len(self.outcomes) > self.MAX_OUTCOMES:
                self.outcomes.popitem(last=False)
        return outcome

    def get(self, kind: str, tenant: str, name: str) -> dict[str, Any] | None:
        return self.items.get(catalog_key(kind, tenant, name))

    def list(self, kind: str, tenant: str | None = None) -> list[dict[str, Any]]:
        prefix = f"{kind}/{tenant}/" if tenant is not None else f"{kind}/"
        return [v for k, v in self.items.items() if k.startswith(prefix)]


Listener = Callable[[str, dict[str, Any] | None], None]


class MetadataCatalog(Service):
    """Tails the metadata topic for the life of the worker; ``write`` is read-your-writes."""

    def __init__(self, settings: Settings, producers: ProducerPool, admin: TopicAdmin,
                 topic: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.current = CatalogState()
        self.topic = topic
        self._producers = producers
        self._admin = admin
        self._tp = TopicPartition(topic, 0)
        self._consumer: AIOKafkaConsumer | None = None
        self._applied = -1  # offset of the last applied record
        self._progress = asyncio.Condition()
        self._listeners: list[Listener] = []
        self._synced_at = 0.0

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def on_start(self) -> None:
        await self._admin.ensure_topics([TopicSpec(
            self.topic, 1, self.settings.internal_replication_factor,
            {"cleanup.policy": "compact", "retention.ms": "-1"},
        )])
        self._consumer = AIOKafkaConsumer(
            **kafka_client_options(self.settings),
            group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
        )
        await self._consumer.start()
        self._consumer.assign([self._tp])
        await self._consumer.seek_to_beginning(self._tp)
        end = (await self._consumer.end_offsets([self._tp]))[self._tp]
        while await self._consumer.position(self._tp) < end:
            await self._poll_once(timeout_ms=500)
        log.info("metadata catalog loaded: %d entries up to offset %d", len(self.current.items), end)

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    @Service.task
    async def _tail(self) -> None:
        while not self.should_stop:
            try:
                await self._poll_once(timeout_ms=200)
            except KafkaError as exc:  # transient: keep tailing, the position is unchanged
                log.warning("metadata tail error: %s", exc)
                await asyncio.sleep(0.5)

    async def _poll_once(self, timeout_ms: int) -> None:
        assert self._consumer is not None
        batches = await self._consumer.getmany(self._tp, timeout_ms=timeout_ms)
        records = batches.get(self._tp, [])
        if not records:
            return
        for rec in records:
            key = rec.key.decode() if rec.key else ""
            value = json.loads(rec.value) if rec.value is not None else None
            try:
                self.current.apply(key, value)
            except Exception:  # a bad record must not stop metadata for everyone
                log.exception("skipping unreadable metadata record at offset %d", rec.offset)
            for listener in self._listeners:
                listener(key, self.current.items.get(key))
        async with self._progress:
            self._applied = records[-1].offset
            self._progress.notify_all()

    async def sync(self, *, timeout: float = 5.0, force: bool = False) -> None:
        """Catch up with the log's current end: read-your-writes across replicas.

        Called on a miss (an unknown stream, say), so a client that created something on one
        replica and uses it on another right away is not told it does not exist. Cheap when the
        replica is already current; repeated misses within 100 ms share one round trip unless
        ``force`` (a count checked under a cross-replica lock, ADR 0016).
        """
        if self._consumer is None or (not force and time.monotonic() - self._synced_at < 0.1):
            return
        try:
            end = (await self._consumer.end_offsets([self._tp]))[self._tp]
            await asyncio.wait_for(self._wait_applied(end - 1), timeout)
        except (KafkaError, TimeoutError) as exc:
            log.warning("metadata sync incomplete: %s", exc)
        self._synced_at = time.monotonic()

    async def write(self, kind: str, tenant: str, name: str, op: str,
                    data: dict[str, Any] | None = None, *, timeout: float = 15.0) -> Outcome:
        """Append an operation and return the outcome every replica will agree on."""
        key = catalog_key(kind, tenant, name)
        request_id = ids.ulid()
        record = {"op": op, "data": data, "request_id": request_id}
        outcome = await self._append(key, record, request_id, timeout)
        if op == "create" and outcome.status == "exists" and outcome.data is not None:
            # we lost the race: re-assert the winner so compaction keeps it (see module doc)
            await self._append(key, {"op": "put", "data": outcome.data}, None, timeout)
        return outcome

    async def delete(self, kind: str, tenant: str, name: str, *, timeout: float = 15.0) -> Outcome:
        return await self.write(kind, tenant, name, "delete", None, timeout=timeout)

    async def _append(self, key: str, record: dict[str, Any], request_id: str | None,
                      timeout: float) -> Outcome:
        meta = await self._producers.send_and_wait(
            self.topic, json.dumps(record, separators=(",", ":")).encode(), key=key.encode(),
        )
        try:
            await asyncio.wait_for(self._wait_applied(meta.offset), timeout)
        except TimeoutError:
            raise Timeout(f"metadata write to {key} not applied within {timeout}s") from None
        if request_id is None:
            return Outcome("updated", record.get("data"))
        outcome = self.current.outcomes.get(request_id)
        if outcome is None:
            raise BrokerUnavailable(f"metadata write {request_id} was not observed in the log")
        return outcome

    async def _wait_applied(self, offset: int) -> None:
        async with self._progress:
            await self._progress.wait_for(lambda: self._applied >= offset)
