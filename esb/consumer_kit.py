"""The consumer kit: the one way a Kafka-native loop of the worker polls, handles and commits.

Every stage that reads Kafka outside a Faust agent (ingress lanes, the archive projection, the
dead-letter indexer, delivery runners and retry tiers, processors and their re-key stage)
subclasses :class:`ConsumerLoop` and implements :meth:`ConsumerLoop.handle` for one poll. The kit
owns what must be the same everywhere (ADR 0009):

* **construction** — :func:`build_consumer`, one set of group/fetch/rebalance options;
* **infrastructure failures** (broker, database, Redis unavailable: :func:`is_infrastructure`)
  back off exponentially, rewind to the committed offsets and retry the *same* records; the
  loop reports itself degraded on the :class:`HealthBoard` (``/health``) until a poll succeeds;
* **record failures** (anything else: a decode error, a data error from PostgreSQL, a bug that a
  hostile record triggers) rewind and replay the failed poll *one record at a time*; the record
  that still fails is dead-lettered with stage, reason and error, its original bytes and headers
  untouched, and the loop commits past it. So no record can crash the worker or hold a
  partition in an endless rewind, and nothing is skipped without a dead letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from esb.deadletter import Failure, send_to_dead_letters
from esb.errors import BrokerUnavailable, StorageUnavailable
from esb.fetch_wait import adapt
from esb.kafka_security import kafka_client_options
from esb.metrics import CONSUMER_BACKOFFS, CONSUMER_POISON
from esb.observability import context as log_context
from esb.settings import Settings

log = logging.getLogger(__name__)

Batches = dict[TopicPartition, list[Any]]

#: backoff after an infrastructure failure: first wait, cap (seconds)
BACKOFF_FIRST_S = 0.5
#: metadata age of a pattern-subscribed loop: new topics are looked for when the catalog says so
#: (:meth:`ConsumerLoop.refresh_metadata`); this bounds how late one written behind the
#: catalog's back (a topic made by hand) is noticed
PATTERN_METADATA_MAX_AGE_MS = 30_000
BACKOFF_CAP_S = 30.0
#: a loop without an ``on_idle`` hook waits this long per empty poll once it has drained: records
#: still wake ``getmany`` at once, only the idle turns of the loop get rarer (ADR 0021); a stop
#: waits for the poll in progress, so this also bounds how long stopping an idle loop takes
IDLE_POLL_TIMEOUT_MS = 500


class StopLoop(Exception):
    """Raised by a stage to end its loop on purpose (e.g. processor error strategy STOP)."""


def is_infrastructure(exc: BaseException) -> bool:
    """True for failures of something the record does not control: retry, never dead-letter."""
    if isinstance(exc, (BrokerUnavailable, StorageUnavailable, KafkaError, ConnectionError,
                        TimeoutError)):
        return True
    try:
        import psycopg

        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            return True
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pass
    try:
        import redis.exceptions as redis_errors

        if isinstance(exc, (redis_errors.ConnectionError, redis_errors.TimeoutError)):
            return True
    except ImportError:  # pragma: no cover - redis is a dependency
        pass
    return False


def describe(exc: BaseException) -> str:
    """A one-line error for a dead letter: the type and the message, bounded."""
    return f"{type(exc).__name__}: {exc}"[:1000]


@dataclass
class LoopStatus:
    ok: bool = True
    error: str | None = None
    since: float | None = None
    retries: int = 0


@dataclass
class HealthBoard:
    """Which consumer loops of this worker are backing off, and why (read by ``/health``)."""

    loops: dict[str, LoopStatus] = field(default_factory=dict)

    def running(self, name: str) -> None:
        """A loop started: counted from now on, healthy until it fails."""
        self.loops.setdefault(name, LoopStatus())

    def failing(self, name: str, error: str) -> LoopStatus:
        status = self.loops.setdefault(name, LoopStatus())
        if status.ok:
            status.since = time.time()
        status.ok, status.error = False, error
        status.retries += 1
        return status

    def recovered(self, name: str) -> None:
        status = self.loops.get(name)
        if status is not None and not status.ok:
            log.info("%s: recovered after %d retries", name, status.retries)
            self.loops[name] = LoopStatus()

    def forget(self, name: str) -> None:
        self.loops.pop(name, None)

    def snapshot(self) -> dict[str, Any]:
        failing = {name: {"error": s.error, "since": s.since, "retries": s.retries}
                   for name, s in self.loops.items() if not s.ok}
        return {"ok": not failing, "loops": len(self.loops), "failing": failing}


def build_consumer(settings: Settings, group_id: str | None, *, client_id: str | None = None,
                   **overrides: Any) -> AIOKafkaConsumer:
    """The one place consumer options are chosen: manual commits, earliest, bounded fetch wait,
    the group timeouts of the settings. ``overrides`` wins. The fetch wait is the minimum of
    the quiet-partition policy (:mod:`esb.fetch_wait`, ADR 0021): it grows up to
    ``ESB_FETCH_IDLE_MAX_WAIT_MS`` while no records come back."""
    options: dict[str, Any] = dict(
        **kafka_client_options(settings), group_id=group_id,
        client_id=client_id or group_id or f"{settings.app_id}-reader",
        enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=500,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        rebalance_timeout_ms=settings.group_rebalance_timeout_ms,
        session_timeout_ms=settings.group_session_timeout_ms,
        heartbeat_interval_ms=settings.group_heartbeat_interval_ms)
    options.update(overrides)
    min_wait = int(options["fetch_max_wait_ms"])
    return adapt(AIOKafkaConsumer(**options), min_wait,  # type: ignore[no-any-return]
                 max(min_wait, settings.fetch_idle_max_wait_ms))


@dataclass
class _Inflight:
    futures: Sequence[Awaitable[Any]]
    starts: dict[TopicPartition, int]  # first offset of each partition in the poll
    offsets: dict[TopicPartition, int]  # what to commit once the futures are done


class ConsumerLoop(ConsumerRebalanceListener):
    """One group member running one stage. Subclasses implement :meth:`handle`.

    ``handle(batches)`` processes one poll. It may return acknowledgement futures: the kit awaits
    them before committing (with ``max_inflight > 1`` several polls are in flight, committed in
    order). Stages whose commit depends on their own state set ``commit_after_handle = False``
    and call :meth:`commit` themselves.
    """

    #: names the loop in logs, /health and dead letters (``esb-dlq-stage``)
    stage: str = "consumer"
    commit_after_handle: bool = True

    def __init__(self, runtime: Any, *, name: str, group_id: str | None,
                 topics: Iterable[str] = (), pattern: str | None = None,
                 poll_timeout_ms: int = 100, max_inflight: int = 1,
                 **consumer_options: Any) -> None:
        self.runtime = runtime
        self.name = name
        self.group_id = group_id
        self.topics = list(topics)
        self.pattern = pattern
        self.poll_timeout_ms = poll_timeout_ms
        self.max_inflight = max(1, max_inflight)
        self.consumer_options = consumer_options
        self.consumer: AIOKafkaConsumer | None = None
        self.task: asyncio.Future[None] | None = None
        self.stopping = False
        self.lock = asyncio.Lock()  # a poll in progress finishes before partitions move
        self.assigned: set[TopicPartition] = set()
        self.inflight: deque[_Inflight] = deque()
        #: after a record failure: per partition, the last offset of the failed poll; records up
        #: to it are replayed one at a time
        self.suspects: dict[TopicPartition, int] = {}
        self._backoff = BACKOFF_FIRST_S
        self._failing = False
        self._empty_polls = 0
        #: the poll being handled: per partition, (first offset, last offset)
        self._polling: dict[TopicPartition, tuple[int, int]] = {}
        #: the last offset this loop committed, per partition (a rewind never goes before it)
        self._committed: dict[TopicPartition, int] = {}
        #: partitions :meth:`hold` paused in the poll being handled: the offset to resume at
        self._held: dict[TopicPartition, int] = {}
        self._hold_timers: dict[TopicPartition, asyncio.TimerHandle] = {}

    # --- hooks for stages -----------------------------------------------------------------
    async def handle(self, batches: Batches) -> Sequence[Awaitable[Any]] | None:
        raise NotImplementedError

    async def on_idle(self) -> None:
        """A poll returned nothing."""

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        """Load what this loop needs for the partitions it now owns (under the poll lock)."""

    def on_revoked(self, partitions: set[TopicPartition]) -> None:
        """Drop what this loop holds for partitions it no longer owns."""

    async def on_rewind(self) -> None:
        """After a failure: what this loop holds back to its saved form."""

    async def on_halt(self, exc: StopLoop) -> None:
        """The stage asked its loop to stop (:class:`StopLoop`)."""

    async def after_commit(self) -> None:
        """After a commit (e.g. flush counters that must count only committed work)."""

    def dead_letter_failure(self, tp: TopicPartition, record: Any, reason: str, error: str
                            ) -> Failure:
        """Where a poisoned record of this stage goes; a redrive re-publishes to ``destination``.
        Stages override to name the tenant and a better destination."""
        return Failure(reason, self.stage, error, tp.topic, tp.partition, record.offset,
                       tp.topic, None)

    async def quarantine(self, tp: TopicPartition, record: Any, exc: BaseException) -> None:
        """Set a record that fails on its own aside: by default a dead letter, acknowledged.
        The dead-letter indexer overrides this (its records already are dead letters)."""
        failure = self.dead_letter_failure(tp, record, "processing_error", describe(exc))
        future = await send_to_dead_letters(
            self.runtime.producers, self.runtime.topics.dead_letters, key=record.key,
            value=record.value, headers=[(k, v) for k, v in (record.headers or ())
                                         if v is not None],
            failure=failure)
        await future

    def hold(self, tp: TopicPartition, offset: int, wait_s: float) -> None:
        """Called from :meth:`handle`: stop reading ``tp`` at ``offset`` for ``wait_s`` seconds,
        then read it again from there. The poll commits only the records before ``offset``, so
        a held record is neither lost nor dead-lettered (e.g. a tenant over its publish quota);
        the loop's other partitions keep flowing."""
        consumer = self.consumer
        assert consumer is not None
        self._held[tp] = min(offset, self._held.get(tp, offset))
        consumer.pause(tp)
        consumer.seek(tp, self._held[tp])
        timer = self._hold_timers.pop(tp, None)
        if timer is not None:
            timer.cancel()
        self._hold_timers[tp] = asyncio.get_running_loop().call_later(
            max(wait_s, 0.0), self._release, tp)

    def _release(self, tp: TopicPartition) -> None:
        self._hold_timers.pop(tp, None)
        if self.consumer is not None and tp in self.assigned:
            self.consumer.resume(tp)

    def _cancel_holds(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            timer = self._hold_timers.pop(tp, None)
            if timer is not None:
                timer.cancel()

    def _uncommitted(self, offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """``offsets`` to commit after a poll, short of what :meth:`hold` kept back."""
        held, self._held = self._held, {}
        for tp, offset in held.items():
            if tp in offsets:
                offsets[tp] = min(offsets[tp], offset)
        return offsets

    # --- life cycle -----------------------------------------------------------------------
    def _build(self) -> AIOKafkaConsumer:
        return build_consumer(self.runtime.settings, self.group_id,
                              client_id=self.consumer_options.pop("client_id", None),
                              **self.consumer_options)

    async def start(self) -> None:
        self.consumer = self._build()
        await self.consumer.start()
        self.health.running(self.name)
        if self.pattern is not None:
            self.consumer.subscribe(pattern=self.pattern, listener=self)
        elif self.topics:
            self.consumer.subscribe(self.topics, listener=self)
        # its own context: not the tenant or trace of a request that happened to start it
        self.task = asyncio.get_running_loop().create_task(self._loop(),
                                                           context=log_context.detached())

    async def stop(self) -> None:
        self.stopping = True
        self._cancel_holds(list(self._hold_timers))
        if self.task is not None and self.task is not asyncio.current_task():
            try:
                await asyncio.wait_for(asyncio.shield(self.task), 15.0)
            except Exception:
                self.task.cancel()
                with contextlib.suppress(BaseException):
                    await self.task
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                await self.drain()
            with contextlib.suppress(Exception):
                await self.consumer.stop()
        self.health.forget(self.name)

    def refresh_metadata(self) -> None:
        """Look for new topics now: a pattern subscription otherwise notices them only when its
        metadata ages out (``metadata_max_age_ms``), and a short age costs an idle worker a
        Metadata request and a restarted fetch per loop every few seconds (ADR 0021)."""
        if self.consumer is not None and not self.stopping:
            self.consumer._client.force_metadata_update()

    @property
    def health(self) -> HealthBoard:
        return self.runtime.consumer_board  # type: ignore[no-any-return]

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self.lock:  # waits for the poll in progress to be saved and committed
            with contextlib.suppress(Exception):
                await self.drain()
            self.assigned -= set(revoked)
            self._cancel_holds(revoked)
            for tp in revoked:
                self.suspects.pop(tp, None)
                self._committed.pop(tp, None)
            self.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        async with self.lock:
            self.assigned = set(assigned)
            self._committed = {}  # from now on the group's committed offsets are the truth
            await self.on_assigned(set(self.assigned))

    # --- the loop -------------------------------------------------------------------------
    async def _loop(self) -> None:
        while not self.stopping:
            try:
                await self.run_once()
            except StopLoop as exc:
                self.stopping = True
                await self.on_halt(exc)

    async def run_once(self) -> None:
        """One poll with the failure policy applied; only StopLoop (and cancellation) escape."""
        try:
            await self.step()
        except (StopLoop, asyncio.CancelledError):
            raise
        except BaseException as exc:  # the loop must outlive any record
            await self._failed(exc)
        else:
            if self._failing:
                self._failing = False
                self._backoff = BACKOFF_FIRST_S
                self.health.recovered(self.name)

    async def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise exc
        if is_infrastructure(exc):
            self._failing = True
            status = self.health.failing(self.name, describe(exc))
            CONSUMER_BACKOFFS.labels(self.stage).inc()
            log.warning("%s: %s; retrying the same records in %.1fs (attempt %d)", self.name,
                        describe(exc), self._backoff, status.retries)
            await self.rewind()
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, BACKOFF_CAP_S)
            return
        log.warning("%s: %s; replaying the poll one record at a time", self.name, describe(exc))
        await self.rewind(isolate=True)

    async def step(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        batches = await consumer.getmany(timeout_ms=self._poll_timeout_ms())
        if self.stopping:
            return  # not handled, not committed: the next owner reads these again
        if not batches:
            self._empty_polls += 1
            await self.drain()
            await self.on_idle()
            return
        self._empty_polls = 0
        async with self.lock:
            batches = {tp: records for tp, records in batches.items()
                       if records and tp in self.assigned}
            if not batches:
                return
            if self.suspects:
                await self._one_at_a_time(batches)
                return
            self._polling = {tp: (records[0].offset, records[-1].offset)
                             for tp, records in batches.items()}
            futures = await self.handle(batches)
            self._polling = {}
            self.inflight.append(_Inflight(
                list(futures or ()), {tp: records[0].offset for tp, records in batches.items()},
                self._uncommitted({tp: records[-1].offset + 1
                                   for tp, records in batches.items()})))
            while self.inflight and (len(self.inflight) >= self.max_inflight
                                     or _done(self.inflight[0].futures)):
                await self._complete(self.inflight.popleft())

    def _poll_timeout_ms(self) -> int:
        """The stage's poll timeout; longer once an idle loop has drained, unless the stage has
        an ``on_idle`` hook that wants its cadence."""
        if (self._empty_polls < 2 or self.inflight
                or type(self).on_idle is not ConsumerLoop.on_idle):
            return self.poll_timeout_ms
        return max(self.poll_timeout_ms, IDLE_POLL_TIMEOUT_MS)

    async def _one_at_a_time(self, batches: Batches) -> None:
        """Replay a failed poll record by record; quarantine the ones that fail on their own."""
        assert self.consumer is not None
        self._polling = {tp: (records[0].offset, records[-1].offset)
                         for tp, records in batches.items()}
        for tp, records in batches.items():
            limit = self.suspects.get(tp)
            for record in records:
                if limit is None or record.offset > limit:
                    self.suspects.pop(tp, None)
                    self._seek(tp, record.offset)  # the rest is read again in batch mode
                    break
                await self._handle_alone(tp, record)
                if tp in self.consumer.paused():
                    break  # the stage holds this partition (a retry tier waiting): stop here
                if record.offset >= limit:
                    self.suspects.pop(tp, None)
                    self._seek(tp, record.offset + 1)
                    break
        self._polling = {}
        await self.after_commit()

    async def _handle_alone(self, tp: TopicPartition, record: Any) -> None:
        # a replayed record is the one a log line is about: name its event (ADR 0019)
        with log_context.bound(**log_context.from_headers(record.headers or ())):
            await self._handle_alone_bound(tp, record)

    async def _handle_alone_bound(self, tp: TopicPartition, record: Any) -> None:
        try:
            futures = await self.handle({tp: [record]})
            if futures:
                await asyncio.gather(*futures)
        except StopLoop:
            raise
        except BaseException as exc:
            if is_infrastructure(exc) or not isinstance(exc, Exception):
                raise
            CONSUMER_POISON.labels(self.stage).inc()
            log.error("%s: record %s:%d@%d failed on its own (%s); set aside", self.name,
                      tp.topic, tp.partition, record.offset, describe(exc))
            try:
                await self.quarantine(tp, record, exc)
            except Exception as again:
                if is_infrastructure(again):
                    raise
                log.error("%s: could not set %s:%d@%d aside (%s); it stays in its topic",
                          self.name, tp.topic, tp.partition, record.offset, describe(again))
            await self.commit({tp: record.offset + 1})
            return
        if self.commit_after_handle:
            await self.commit(self._uncommitted({tp: record.offset + 1}))

    def _seek(self, tp: TopicPartition, offset: int) -> None:
        if self.consumer is not None and tp in self.assigned:
            self.consumer.seek(tp, offset)

    async def _complete(self, batch: _Inflight) -> None:
        if batch.futures:
            await asyncio.gather(*batch.futures)
        if self.commit_after_handle:
            await self.commit(batch.offsets)
        await self.after_commit()

    async def drain(self) -> None:
        """Finish and commit everything in flight (on revoke, on an empty poll and on stop)."""
        while self.inflight:
            await self._complete(self.inflight.popleft())

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        mine = {tp: o for tp, o in offsets.items() if tp in self.assigned}
        if mine and self.consumer is not None:
            await self.consumer.commit(mine)
            for tp, offset in mine.items():
                self._committed[tp] = max(self._committed.get(tp, offset), offset)

    async def rewind(self, *, isolate: bool = False) -> None:
        """Drop the work in flight and read it again: every partition of the failed poll and of
        the polls in flight goes back to where they started (or to a later offset this loop
        committed since). Local seeks only, no broker round trip, however many partitions a
        pattern subscription holds. With ``isolate``, those records are then handled one at a
        time."""
        ranges: dict[TopicPartition, tuple[int, int]] = dict(self._polling)
        for batch in self.inflight:
            for tp, start in batch.starts.items():
                first, last = ranges.get(tp, (start, batch.offsets[tp] - 1))
                ranges[tp] = (min(first, start), max(last, batch.offsets[tp] - 1))
        self.inflight.clear()
        self._polling = {}
        self._held = {}  # a held partition stays paused; it is read again from the rewind point
        if isolate:
            for tp, (_, last) in ranges.items():
                self.suspects[tp] = max(self.suspects.get(tp, -1), last)
        try:
            async with self.lock:
                await self.on_rewind()
                for tp, (first, _) in ranges.items():
                    self._seek(tp, max(first, self._committed.get(tp, first)))
        except Exception as exc:  # the next poll retries; never end the loop
            log.warning("%s: rewind failed (%s); retrying", self.name, describe(exc))
            await asyncio.sleep(self._backoff)


def _done(futures: Sequence[Awaitable[Any]]) -> bool:
    """Cheap readiness test for the oldest poll in flight: its last send settled (sends complete
    in order per producer batch; ``_complete`` still awaits every future)."""
    if not futures:
        return True
    last = futures[-1]
    return bool(last.done()) if isinstance(last, asyncio.Future) else True


async def reconcile_forever(name: str, changed: asyncio.Event, should_stop: Any,
                            reconcile: Any) -> None:
    """Run ``reconcile()`` whenever ``changed`` is set (and at least every second), for the
    workers that start and stop one loop per catalog entry (subscriptions, jobs). A failed
    reconcile is logged and retried; it never ends the worker."""
    while not should_stop():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), 1.0)
        if not changed.is_set():
            continue
        changed.clear()
        try:
            await reconcile()
        except Exception as exc:  # retried on the next turn
            log.exception("%s: reconcile failed (%s); retrying", name, describe(exc))
            await asyncio.sleep(1.0)
            changed.set()
