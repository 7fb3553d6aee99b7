"""Runs stream processors and CEP patterns: Kafka-native consumers with changelogged state.

Every replica runs every RUNNING job (catalog kinds ``processor`` and ``pattern``); Kafka spreads
the source partitions over the replicas' consumers (group ``<app_id>.proc.<job_id>``, range
assignor, ``parallelism`` consumers per replica). Why not a Faust agent: Faust's per-event
stream machinery caps a process near 0.13x of raw aiokafka here (DESIGN.md), see ADR 0007.

Exactness (ADR 0007): per poll, each record of source partition ``p`` is applied to the
partition's state unless the state says its offset was applied before; then
1. derived events, forwards and dead letters are produced and acknowledged,
2. each touched partition's whole state value (operator state + applied offsets + metrics) is
   produced to the changelog ``<prefix>.proc.<job_id>.state`` (partition ``p``) and acknowledged,
   and saved in the local RocksDB store with its changelog offset,
3. the input offsets are committed.
A crash before 2 replays the inputs against the older state (outputs re-emitted with the same
deterministic ids); a crash between 2 and 3 replays inputs the state already has (skipped). So
window results and metrics count every input exactly once.

Keyed jobs (windows, JOIN, patterns) have a second consumer group ``….rekey`` per job
(:mod:`agents.repartition`) copying the sources to ``<prefix>.proc.<job_id>.repartition`` by
job key; the runner reads that topic and drops re-emitted copies by their origin
(:mod:`esb.processing.repartition`), so the two stages together still count each input once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from agents.job_consumer import JobConsumer, JobWorker, StopJob
from agents.repartition import RepartitionRunner
from esb.consumer_kit import build_consumer, reconcile_forever
from esb.deadletter import Failure, send_to_dead_letters
from esb.errors import EsbError
from esb.kafka import TopicSpec, compression_codec
from esb.metrics import (
    PATTERN_MATCHES,
    PROCESSOR_EVENTS,
    PROCESSOR_LATE_EVENTS,
    PROCESSOR_WINDOW_CLOSES,
)
from esb.observability import tracing
from esb.processing import partition_state as ps
from esb.processing.handlers import PatternHandler
from esb.processing.jobs import Job, job_from_record
from esb.processing.metrics import ProcessorMetrics
from esb.processing.models import ErrorHandlingStrategy
from esb.processing.progress import drive_by_progress
from esb.processing.repartition import (
    ORIGIN_HEADER,
    Origin,
    mark_seen,
    parse_origin,
    parse_progress,
    repartition_topic,
    seen_before,
)
from esb.processing.service import FAILED, PATTERN_KIND, PROCESSOR_KIND, RUNNING, JobCatalog
from esb.processing.statestore import LocalStateStore
from esb.processing.wire import (
    envelope_for,
    event_from_record,
    output_priority,
    replace_stream_header,
)
from esb.topics import Priority

log = logging.getLogger(__name__)

RETRY_ATTEMPTS = 3
RETRY_BACKOFF_S = 0.05
TICK_INTERVAL_S = 0.5


def changelog_topic(prefix: str, job_id: str) -> str:
    return f"{prefix}.proc.{job_id}.state"


class ChangelogReader:
    """Reads the last record of changelog partitions (restore on assignment, metrics views)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.consumer: AIOKafkaConsumer | None = None
        self.lock = asyncio.Lock()

    async def start(self) -> None:
        self.consumer = build_consumer(self.settings, None, fetch_max_wait_ms=50,
                                       max_partition_fetch_bytes=16 << 20)
        await self.consumer.start()

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()

    async def end_offsets(self, topic: str, partitions: list[int]) -> dict[int, int]:
        assert self.consumer is not None
        async with self.lock:
            tps = [TopicPartition(topic, p) for p in partitions]
            ends = await self.consumer.end_offsets(tps)
            return {tp.partition: end for tp, end in ends.items()}

    async def last_records(self, topic: str, partitions: list[int], *, timeout: float = 15.0
                           ) -> dict[int, tuple[int, bytes]]:
        """``{partition: (offset, value)}`` of each partition's last record (absent if empty)."""
        assert self.consumer is not None
        async with self.lock:
            tps = [TopicPartition(topic, p) for p in partitions]
            self.consumer.assign(tps)
            ends = await self.consumer.end_offsets(tps)
            wanted = {tp: end - 1 for tp, end in ends.items() if end > 0}
            for tp, offset in wanted.items():
                self.consumer.seek(tp, offset)
            found: dict[int, tuple[int, bytes]] = {}
            deadline = time.monotonic() + timeout
            while len(found) < len(wanted):
                if time.monotonic() > deadline:
                    raise EsbError(f"changelog {topic} not readable within {timeout}s")
                remaining = [tp for tp in wanted if tp.partition not in found]
                batches = await self.consumer.getmany(*remaining, timeout_ms=200)
                for tp, records in batches.items():
                    for record in records:
                        if record.offset >= wanted[tp] and record.value is not None:
                            found[tp.partition] = (record.offset, record.value)
            self.consumer.assign([])
            return found


@dataclass
class Pending:
    """What one poll produced, to be acknowledged before the state and offsets are saved."""

    futures: list[asyncio.Future[Any]] = field(default_factory=list)
    touched: dict[int, set[TopicPartition]] = field(default_factory=dict)


class JobRunner(JobConsumer):
    """One consumer of one job on this replica: applies inputs to its partitions' states."""

    def __init__(self, worker: JobWorker, job: Job, index: int) -> None:
        runtime = worker.runtime
        prefix = runtime.topics.prefix
        topics = ([repartition_topic(prefix, job.job_id)] if job.repartitioned
                  else list(job.sources))
        super().__init__(worker, job, index, group_id=f"{runtime.settings.app_id}.proc.{job.job_id}",
                         topics=topics)
        self.changelog = changelog_topic(prefix, job.job_id)
        self.codec = compression_codec(job.target.get("compression_type"))
        self.states: dict[int, dict[str, Any]] = {}
        self.last_tick = 0.0
        # wall-clock ms each source was last heard from, per partition (not state: a restart
        # starts counting again)
        self.heard: dict[int, dict[str, int]] = {}

    def new_state(self) -> dict[str, Any]:
        operator = self.job.handler.new_operator_state()
        if self.job.repartitioned and operator is not None:
            drive_by_progress(operator, self.job.source_keys)  # wait for every source's progress
        return ps.new_partition_state(operator)

    def revoked(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.states.pop(partition, None)
            self.heard.pop(partition, None)

    async def restore(self, partitions: set[int]) -> None:
        """Each partition's state: the local copy if it is the changelog's latest, else the log."""
        self.states = {p: s for p, s in self.states.items() if p in partitions}
        wanted = sorted(partitions)
        if not wanted:
            return
        reader, store = self.worker.reader, self.worker.store
        ends = await reader.end_offsets(self.changelog, wanted)
        stale: list[int] = []
        for p in wanted:
            local = store.load(self.job.state_key(p))
            end = ends.get(p, 0)
            if end == 0:
                self.states[p] = self.new_state()
            elif local is not None and local[0] == end - 1:
                self.states[p] = ps.decode(local[1])
            else:
                stale.append(p)
        if stale:
            for p, (offset, raw) in (await reader.last_records(self.changelog, stale)).items():
                self.states[p] = ps.decode(raw)
                store.save(self.job.state_key(p), offset, raw)
        log.info("%s: restored state of partitions %s (%d from the changelog)", self.group_id,
                 wanted, len(stale))

    # --- the loop -----------------------------------------------------------------------
    commit_after_handle = False  # offsets follow the saved state (see _save)

    async def handle(self, batches: dict[TopicPartition, list[Any]]) -> None:
        pending = Pending()
        try:
            await self._apply_batches(batches, pending)
            await self._maybe_tick(pending)
        finally:
            await self._save(pending)

    async def on_idle(self) -> None:
        if not self.job.stateful:
            return
        async with self.lock:
            pending = Pending()
            try:
                await self._maybe_tick(pending)
            finally:
                await self._save(pending)

    async def _maybe_tick(self, pending: Pending) -> None:
        if self.job.stateful and time.monotonic() - self.last_tick >= TICK_INTERVAL_S:
            self.last_tick = time.monotonic()
            await self._tick(pending)

    async def _apply_batches(self, batches: dict[TopicPartition, list[Any]],
                             pending: Pending) -> None:
        now_ms = int(time.time() * 1000)
        for tp, records in batches.items():
            state = self.states.get(tp.partition)
            if tp not in self.assigned or state is None:
                continue
            touched = pending.touched.setdefault(tp.partition, set())
            touched.add(tp)
            heard = self.heard.setdefault(tp.partition, {})
            for record in records:
                if ps.is_applied(state, tp.topic, tp.partition, record.offset):
                    continue
                reports = (parse_progress(record.headers, record.value)
                           if self.job.repartitioned else None)
                if reports is not None:
                    await self._emit(state, self.job.handler.progress(state["op"], reports),
                                     pending)
                    ps.mark_applied(state, tp.topic, tp.partition, record.offset)
                    continue
                origin = parse_origin(record.headers) if self.job.repartitioned else None
                if origin is None:
                    origin = Origin(tp.topic, tp.partition, record.offset, record.offset)
                    await self._apply(state, origin, record, pending)
                elif not seen_before(state["origins"], origin):
                    await self._apply(state, origin, record, pending)
                    mark_seen(state["origins"], origin)
                heard[origin.source_key] = now_ms
                ps.mark_applied(state, tp.topic, tp.partition, record.offset)

    async def _apply(self, state: dict[str, Any], source: Origin, record: Any,
                     pending: Pending) -> None:
        """Apply one input; ``source`` is where it was published (not the repartition copy).
        With tracing on, inside an ``esb.process`` span, child of the input's context: what the
        input forwards or completes (a match, a closed window) carries that span (ADR 0019)."""
        if not tracing.ENABLED:
            await self._apply_input(state, source, record, pending)
            return
        with tracing.span("esb.process", parent=tracing.extract_headers(record.headers),
                          kind=tracing.SpanKind.CONSUMER, attributes={
                              "esb.tenant": self.job.tenant, "esb.job_id": self.job.job_id}):
            await self._apply_input(state, source, record, pending)

    async def _apply_input(self, state: dict[str, Any], source: Origin, record: Any,
                           pending: Pending) -> None:
        job = self.job
        side = job.sources.get(source.topic, "left")
        metrics = ProcessorMetrics(state["metrics"])
        attempts = RETRY_ATTEMPTS if job.strategy == ErrorHandlingStrategy.RETRY else 1
        started = time.perf_counter()
        handled = None
        error: Exception | None = None
        for attempt in range(attempts):
            try:
                event = event_from_record(record.headers, record.value)
                handled = job.handler.handle(state["op"], event, side=side,
                                             source=source.source_key)
                break
            except Exception as exc:
                error = exc
                if attempt + 1 < attempts:
                    ps.count(state, "retries")
                    await asyncio.sleep(RETRY_BACKOFF_S * 4 ** attempt)
        at_ms = int(time.time() * 1000)
        duration_ms = (time.perf_counter() - started) * 1000
        if handled is None:
            message = f"{type(error).__name__}: {error}"
            if job.strategy == ErrorHandlingStrategy.STOP:
                raise StopJob(f"input {source.topic}:{source.partition}@{source.offset}: "
                              f"{message}")
            metrics.record("error", duration_ms=duration_ms, at_ms=at_ms)
            PROCESSOR_EVENTS.labels(job.tenant, job.job_id, "error").inc()
            if job.strategy != ErrorHandlingStrategy.SKIP:
                await self._dead_letter(state, source, record, "processing_failed", message,
                                        pending)
            return
        metrics.record(handled.outcome, duration_ms=duration_ms, at_ms=at_ms)
        PROCESSOR_EVENTS.labels(job.tenant, job.job_id, handled.outcome).inc()
        if handled.forward:
            priority = self._lane_of(source.topic)
            pending.futures.append(await self.worker.runtime.producers.send(
                job.target["topics"][priority.value], record.value, key=record.key,
                headers=tracing.stamp_current(
                    replace_stream_header(record.headers, job.target["stream_name"])),
                codec=self.codec))
            ps.count(state, "outputs_emitted")
        await self._emit(state, handled.outputs, pending)
        if handled.late:
            ps.count(state, "late_events")
            PROCESSOR_LATE_EVENTS.labels(job.tenant, job.job_id).inc()
            await self._dead_letter(state, source, record, "late_event",
                                    f"event older than the watermark of {job.kind} "
                                    f"{job.job_id} (window closed or grace period passed)",
                                    pending)

    def _lane_of(self, topic: str) -> Priority:
        parsed = self.worker.runtime.topics.parse_stream_topic(topic)
        return parsed[2] if parsed is not None else Priority.NORMAL

    async def _emit(self, state: dict[str, Any], outputs: list[dict[str, Any]],
                    pending: Pending) -> None:
        job, producers = self.job, self.worker.runtime.producers
        for output in outputs:
            envelope = envelope_for(output, tenant=job.tenant, stream=job.target["stream_name"])
            topic = job.target["topics"][output_priority(output).value]
            key = str(output.get("partition_key") or output.get("aggregate_id")
                      or output["event_id"])
            pending.futures.append(await producers.send(
                topic, envelope.data, key=key.encode(),
                headers=tracing.stamp_current(envelope.kafka_headers()), codec=self.codec))
            if isinstance(job.handler, PatternHandler):
                ps.remember_match(state, output)
        ps.count(state, "outputs_emitted", len(outputs))
        if outputs:  # a pattern's outputs are matches; a keyed processor's, closed windows
            emitted = (PATTERN_MATCHES if isinstance(job.handler, PatternHandler)
                       else PROCESSOR_WINDOW_CLOSES)
            emitted.labels(job.tenant, job.job_id).inc(len(outputs))

    async def _dead_letter(self, state: dict[str, Any], source: Origin, record: Any,
                           reason: str, error: str, pending: Pending) -> None:
        """The input as published (our origin header dropped), to redrive to its topic."""
        runtime = self.worker.runtime
        headers = [item for item in record.headers if item[0] != ORIGIN_HEADER]
        pending.futures.append(await send_to_dead_letters(
            runtime.producers, runtime.topics.dead_letters, key=record.key, value=record.value,
            headers=headers,
            failure=Failure(reason, "processor", error, source.topic, source.partition,
                            source.offset, source.topic, self.job.tenant)))
        ps.count(state, "dead_lettered")

    async def _tick(self, pending: Pending) -> None:
        """Wall-clock time passing on every partition: idle sources, idle windows, timers."""
        now_ms = int(time.time() * 1000)
        idle_ms = self.job.handler.idle_timeout_ms
        for partition, state in self.states.items():
            idle: frozenset[str] = frozenset()
            if idle_ms and not self.job.repartitioned:  # re-keyed: progress records say it
                heard = self.heard.setdefault(partition, {})
                for source in (state["op"] or {}).get("sources", ()):
                    heard.setdefault(source, now_ms)  # unknown since restore: count from now
                idle = frozenset(s for s, at in heard.items() if now_ms - at >= idle_ms)
            outputs = self.job.handler.tick(state["op"], now_ms, idle)
            if outputs:
                await self._emit(state, outputs, pending)
                pending.touched.setdefault(partition, set())

    async def _save(self, pending: Pending) -> None:
        """Acks, then changelog + local store, then offsets: the order exactness rests on."""
        if not pending.touched:
            if pending.futures:
                await asyncio.gather(*pending.futures)
            return
        assert self.consumer is not None
        producers, store = self.worker.runtime.producers, self.worker.store
        if pending.futures:
            await asyncio.gather(*pending.futures)
        encoded = {p: ps.encode(self.states[p]) for p in pending.touched if p in self.states}
        sent = {p: await producers.send(self.changelog, raw, key=self.job.state_key(p).encode(),
                                        partition=p)
                for p, raw in encoded.items()}
        for p, future in sent.items():
            metadata = await future
            store.save(self.job.state_key(p), metadata.offset, encoded[p])
        commits: dict[TopicPartition, int] = {}
        for p, tps in pending.touched.items():
            state = self.states.get(p)
            for tp in tps:
                last = state["applied"].get(ps.applied_key(tp.topic, tp.partition)) if state \
                    else None
                if last is not None and tp in self.assigned:
                    commits[tp] = last + 1
        if commits:
            await self.commit(commits)


class ProcessingWorker(Service):
    """Starts and stops this replica's runners as RUNNING jobs appear and go in the catalog."""

    def __init__(self, runtime: Any, processors: JobCatalog, patterns: JobCatalog,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runtime = runtime
        self.services = {PROCESSOR_KIND: processors, PATTERN_KIND: patterns}
        self.reader = ChangelogReader(runtime.settings)
        self.store: LocalStateStore = None  # type: ignore[assignment]
        self.runners: dict[str, tuple[str, list[JobConsumer]]] = {}
        self._changed = asyncio.Event()
        self._reconciling = asyncio.Lock()
        runtime.catalog.add_listener(self._on_catalog_change)

    @property
    def store_path(self) -> Path:
        s = self.runtime.settings
        return s.data_dir / f"worker-{s.web_port}" / "processing-state"

    async def on_start(self) -> None:
        self.store = LocalStateStore(self.store_path)
        await self.reader.start()
        self._changed.set()

    async def on_stop(self) -> None:
        runners = [r for _, group in self.runners.values() for r in group]
        self.runners.clear()
        await asyncio.gather(*(r.stop() for r in runners), return_exceptions=True)
        await self.reader.stop()
        if self.store is not None:
            self.store.close()

    def _on_catalog_change(self, key: str, _value: Any) -> None:
        if key.startswith((PROCESSOR_KIND + "/", PATTERN_KIND + "/")):
            self._changed.set()

    @Service.task
    async def _reconcile_loop(self) -> None:
        async def reconcile() -> None:
            if self.store is not None:
                await self.reconcile()

        await reconcile_forever("processing", self._changed, lambda: self.should_stop,
                                reconcile)

    def wanted(self) -> dict[str, tuple[str, dict[str, Any]]]:
        out: dict[str, tuple[str, dict[str, Any]]] = {}
        for kind, service in self.services.items():
            for record in self.runtime.catalog.current.list(kind):
                if record.get("status") == RUNNING:
                    out[record[service.id_field]] = (kind, record)
        return out

    async def reconcile(self) -> None:
        """Stop runners of jobs no longer RUNNING, start runners of new ones (serialised)."""
        async with self._reconciling:
            await self._reconcile()

    async def _reconcile(self) -> None:
        wanted = self.wanted()
        for job_id, (fingerprint, runners) in list(self.runners.items()):
            entry = wanted.get(job_id)
            if entry is None or fingerprint != f"{entry[1].get('started_at')}|{RUNNING}":
                del self.runners[job_id]
                await asyncio.gather(*(r.stop() for r in runners), return_exceptions=True)
        for job_id, (kind, record) in wanted.items():
            if job_id in self.runners:
                continue
            try:
                job = job_from_record(kind, record, self.runtime.streams.directory)
            except EsbError as exc:
                log.error("%s %s cannot run: %s", kind, job_id, exc.message)
                await self.fail_record(kind, record, exc.message)
                continue
            await self.ensure_topics(job)
            runners: list[JobConsumer] = [JobRunner(self, job, index)
                                          for index in range(job.consumers)]
            if job.repartitioned:
                runners += [RepartitionRunner(self, job, index)
                            for index in range(job.consumers)]
            self.runners[job_id] = (job.fingerprint, runners)
            for runner in runners:
                await runner.start()

    async def ensure_changelog(self, job_id: str, partitions: int) -> None:
        """Created when the job is, so its metrics can be read before it first runs."""
        s = self.runtime.settings
        await self.runtime.admin.ensure_topics([TopicSpec(
            changelog_topic(self.runtime.topics.prefix, job_id), partitions,
            s.internal_replication_factor, {"cleanup.policy": "compact"})])

    async def ensure_topics(self, job: Job) -> None:
        """The job's state changelog and, for keyed jobs, its repartition topic."""
        await self.ensure_changelog(job.job_id, job.partitions)
        if job.repartitioned:
            await self.runtime.admin.ensure_topics([TopicSpec(
                repartition_topic(self.runtime.topics.prefix, job.job_id), job.partitions,
                self.runtime.settings.internal_replication_factor)])

    async def fail(self, job: Job, error: str) -> None:
        log.error("%s %s stopped by its STOP strategy: %s", job.kind, job.job_id, error)
        await self.services[job.kind].set_status(job.tenant, job.job_id, FAILED, error)

    async def fail_record(self, kind: str, record: dict[str, Any], error: str) -> None:
        service = self.services[kind]
        with contextlib.suppress(EsbError):
            await service.set_status(record["tenant_id"], record[service.id_field], FAILED,
                                     error)

    async def partition_states(self, job_id: str, partitions: int) -> list[dict[str, Any]]:
        """Every partition's latest saved state, whichever replica owns it (for metrics)."""
        topic = changelog_topic(self.runtime.topics.prefix, job_id)
        try:
            found = await self.reader.last_records(topic, list(range(partitions)))
        except KafkaError:
            return []
        return [ps.decode(raw) for _, raw in sorted(found.values())]
