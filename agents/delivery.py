"""Webhook delivery workers: per-subscription consumer groups, retry tiers, dead letters.

Kafka-native like ``agents.ingress`` (aiokafka, commit after the work is settled). Per active
webhook subscription one consumer group (``<app_id>.<tenant>.<subscription_id>``) reads the
stream's lane topics and the tenant's redelivery topic; Kafka group membership spreads the
partitions across replicas. A catalog listener starts and stops runners as subscriptions appear,
change generation (replay, rebalance) or go away.

Lanes: a poll's records are handled CRITICAL first, and while a higher lane returns records the
lower lanes' partitions are paused (strict priority; a lower lane resumes when the higher ones
run dry).

A failed attempt never holds a partition: the record goes to ``<prefix>.retry.<tier>`` with its
due time and attempt log in headers and the offset is committed once that write is acked. One
consumer per tier pauses a partition until its head record has waited the tier's delay, then
forwards it to a smaller tier or re-attempts. A tier's consumer runs only while the tier may hold
records (:class:`OnDemandTiers`): an idle bus has none. After the last attempt the record goes to the
dead-letter topic (stage ``delivery``, attempt log in the error) with destination
``<prefix>.<tenant>._redeliver`` so a redrive re-delivers it. See ``esb.delivery.dedup`` for what
each delivery mode guarantees.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

from esb.consumer_kit import ConsumerLoop, StopLoop, build_consumer, reconcile_forever
from esb.deadletter import Failure, send_to_dead_letters
from esb.delivery.breaker import BreakerConfig, CircuitState, InMemoryCircuitBreaker
from esb.delivery.cloudevents_http import OutboundEvent
from esb.delivery.config import DeliverySettings
from esb.delivery.dedup import InMemoryDedupStore
from esb.delivery.deliverer import Deliverer
from esb.delivery.http_client import WebhookClient
from esb.delivery.lag import OffsetReader
from esb.delivery.matching import LazyPayload, SubscriptionMatcher
from esb.delivery.models import DeliveryMode, RetryPolicyConfig, SubscriptionState
from esb.delivery.names import (
    DELIVERY_HEADERS,
    H_ATTEMPTS,
    H_DUE_AT,
    H_ORIGIN,
    H_SUBSCRIPTION,
    H_TENANT,
    SUBSCRIPTION_KIND,
    redeliver_topic,
    retry_topic,
    status_topic,
    tier_label,
)
from esb.delivery.ratelimit import InMemoryRateLimiter, RateLimit
from esb.delivery.replay_job import replay_marker
from esb.delivery.retry import (
    AttemptLog,
    DelayTiers,
    NextAction,
    Outcome,
    RetryPolicy,
    decide_next_step,
)
from esb.delivery.secretbox import SecretBox
from esb.delivery.ssrf import SsrfGuard
from esb.delivery.stats import DeliveryStats
from esb.envelope import attributes_from_kafka_headers
from esb.errors import EsbError
from esb.kafka import TopicSpec, topic_partitions
from esb.kafka_security import kafka_security_options
from esb.metrics import (
    CIRCUIT_LEVEL,
    DELIVERY_ATTEMPTS,
    DELIVERY_CIRCUIT,
    DELIVERY_EVENTS,
    DELIVERY_LATENCY,
)
from esb.observability import context as log_context
from esb.observability.delivery import delivery_span
from esb.topics import LANES

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]


def retry_group(app_id: str, tier_s: float) -> str:
    """The consumer group of one retry tier (shared by every replica)."""
    return f"{app_id}.delivery-retry.{tier_label(tier_s)}"


@dataclass(slots=True)
class Item:
    """One record on its way to a receiver, wherever it was read from."""

    key: bytes | None
    value: bytes | None
    headers: Headers  # the original headers, without our delivery headers
    origin: tuple[str, int, int]
    attempts: AttemptLog


def _header(headers: Sequence[tuple[str, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode()
    return None


def _original(headers: Sequence[tuple[str, bytes]]) -> Headers:
    return [(k, v) for k, v in headers if k not in DELIVERY_HEADERS]


def _origin_of(headers: Sequence[tuple[str, bytes]], fallback: tuple[str, int, int]
               ) -> tuple[str, int, int]:
    raw = _header(headers, H_ORIGIN)
    if not raw:
        return fallback
    topic, partition, offset = raw.rsplit(":", 2)
    return topic, int(partition), int(offset)


class DeliveryWorker(Service):
    """Owns the adapters and every runner of this replica."""

    def __init__(self, app: Any, config: DeliverySettings, box: SecretBox,
                 subscriptions: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app = app
        self.runtime = app.runtime
        self.config = config
        self.box = box
        self.subscriptions = subscriptions
        self.tiers = DelayTiers(config.tiers)
        self.guard = SsrfGuard(allow_cidrs=config.cidrs, allow_hosts=config.hosts)
        self.client = WebhookClient()
        self.redis: Any = None
        self.stats = DeliveryStats(None, f"{self.runtime.topics.prefix}:")
        self.deliverer: Deliverer | None = None
        self.runners: dict[str, SubscriptionRunner] = {}
        self.retry = OnDemandTiers(self)
        self._changed = asyncio.Event()
        self._replayed_local: set[str] = set()
        self.runtime.catalog.add_listener(self._on_catalog_change)

    # --- lifecycle ----------------------------------------------------------------------
    async def on_start(self) -> None:
        runtime, config = self.runtime, self.config
        resealed = await self.subscriptions.reseal_secrets()  # after a key rotation (ADR 0018)
        if resealed:
            log.info("re-sealed the webhook secrets of %d subscription(s)", resealed)
        prefix = f"{runtime.topics.prefix}:"
        breaker_config = BreakerConfig(config.breaker_failure_threshold, config.breaker_cooldown_s)
        rate = RateLimit(config.rate_per_s, config.rate_burst)
        if runtime.settings.redis_url is not None:
            import redis.asyncio as aioredis
            from redis.backoff import ExponentialBackoff
            from redis.retry import Retry

            from esb.delivery.breaker_redis import RedisCircuitBreaker
            from esb.delivery.dedup_redis import RedisDedupStore
            from esb.delivery.ratelimit_redis import RedisRateLimiter

            self.redis = aioredis.from_url(
                runtime.settings.redis_url.get_secret_value(),
                socket_timeout=config.redis_timeout_s,
                socket_connect_timeout=config.redis_timeout_s,
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
            )
            breaker: Any = RedisCircuitBreaker(self.redis, breaker_config, prefix=prefix)
            limiter: Any = RedisRateLimiter(self.redis, rate, prefix=prefix)
            dedup: Any = RedisDedupStore(self.redis, prefix=prefix)
        else:
            breaker = InMemoryCircuitBreaker(breaker_config)
            limiter = InMemoryRateLimiter(rate)
            dedup = InMemoryDedupStore()
        self.stats = DeliveryStats(self.redis, prefix)
        self.deliverer = Deliverer(self.client, self.guard, breaker, limiter, dedup,
                                   max_inline_rate_wait_s=config.max_inline_rate_wait_s)
        s = runtime.settings
        await runtime.admin.ensure_topics(
            [TopicSpec(retry_topic(runtime.topics, t), s.default_partitions,
                       s.internal_replication_factor) for t in self.tiers.tiers]
            + [TopicSpec(status_topic(runtime.topics), 1, s.internal_replication_factor,
                         {"retention.ms": str(24 * 3600 * 1000)})])
        if config.enabled:
            await self.retry.start_backlogged()  # records parked before a restart or a crash
        self._changed.set()

    async def on_stop(self) -> None:
        await asyncio.gather(*(r.stop() for r in self.runners.values()), return_exceptions=True)
        await self.retry.stop()
        self.runners.clear()
        await self.stats.flush()
        await self.client.close()
        if self.redis is not None:
            await self.redis.aclose()

    def _on_catalog_change(self, key: str, _value: Any) -> None:
        if key.startswith(SUBSCRIPTION_KIND + "/"):
            self._changed.set()

    @Service.task
    async def _reconcile_loop(self) -> None:
        async def reconcile() -> None:
            if self.deliverer is not None:
                await self.reconcile()
            else:
                self._changed.set()  # not started yet: try again on the next turn

        await reconcile_forever("delivery", self._changed, lambda: self.should_stop, reconcile)

    @property
    def retry_runners(self) -> list[RetryTierRunner]:
        return list(self.retry.running.values())

    @Service.task
    async def _tend_retry_tiers(self) -> None:
        while not self.should_stop:
            await self.sleep(self.retry.check_s)
            if self.config.enabled:
                await self.retry.tend()

    @Service.task
    async def _flush_stats(self) -> None:
        while not self.should_stop:
            await asyncio.sleep(1.0)
            await self.stats.flush()

    def wanted(self) -> dict[str, dict[str, Any]]:
        if not self.config.enabled:
            return {}
        return {s["subscription_id"]: s
                for s in self.runtime.catalog.current.list(SUBSCRIPTION_KIND)
                if s.get("status") == SubscriptionState.ACTIVE and s.get("webhook_url")}

    async def reconcile(self) -> None:
        wanted = self.wanted()
        for sub_id, runner in list(self.runners.items()):
            sub = wanted.get(sub_id)
            if sub is None or sub.get("generation") != runner.generation:
                del self.runners[sub_id]
                await runner.stop()
        for sub_id, sub in wanted.items():
            if sub_id not in self.runners:
                runner = SubscriptionRunner(self, sub)
                self.runners[sub_id] = runner
                await runner.start()

    # --- handling -----------------------------------------------------------------------
    def subscription(self, tenant: str, sub_id: str) -> dict[str, Any] | None:
        return self.runtime.catalog.current.get(SUBSCRIPTION_KIND, tenant, sub_id)

    async def dispatch(self, sub: dict[str, Any], items: list[Item], attempts: AttemptLog
                       ) -> None:
        """Attempt one delivery of ``items`` and settle it: done, parked, dead-lettered."""
        assert self.deliverer is not None
        sub_id = sub["subscription_id"]
        events: list[OutboundEvent] = []
        good: list[Item] = []
        for item in items:
            try:
                events.append(OutboundEvent.from_kafka(item.headers, item.value))
                good.append(item)
            except (ValueError, UnicodeDecodeError) as exc:
                await self.dead_letter(sub, [item], "invalid_event", str(exc), attempts)
        if not good:
            return
        mode = DeliveryMode(sub["delivery_mode"])
        policy = RetryPolicy.from_config(RetryPolicyConfig(**sub["retry_policy"]))
        if mode is DeliveryMode.AT_MOST_ONCE:
            policy = replace(policy, max_retries=0)
        with log_context.bound(tenant=sub["tenant_id"], subscription_id=sub_id,
                               event_id=events[0].id, stream=events[0].attributes.get("stream"),
                               correlation_id=events[0].attributes.get("correlationid")), \
                delivery_span(sub_id, [item.headers for item in good], attempts) as span:
            attempted = await self.deliverer.attempt(
                tenant=sub["tenant_id"], subscription_id=sub_id, url=sub["webhook_url"],
                keys=self.box.keys_for(sub),
                events=events, batched=int(sub.get("batch_size", 1)) > 1,
                timeout_s=int(sub.get("webhook_timeout_ms", 5000)) / 1000,
                exactly_once=mode is DeliveryMode.EXACTLY_ONCE)
            if span is not None:
                span.set_attribute("esb.delivery.outcome", attempted.result.outcome.value)
                if attempted.status_code is not None:
                    span.set_attribute("http.response.status_code", attempted.status_code)
        now = time.time()
        await self.observe(sub, attempted)
        if attempted.gated:
            await self.park(sub, good, attempts, now + attempted.wait_s)
            return
        if attempted.duplicate:
            self.stats.count(sub_id, "events_deduplicated", len(good))
            return
        attempts.record(started_at=attempted.started_at, duration_ms=attempted.duration_ms,
                        result=attempted.result, status_code=attempted.status_code)
        step = decide_next_step(attempted.result, attempts_made=attempts.total, policy=policy,
                                dead_letter_enabled=bool(sub.get("dead_letter_enabled", True)),
                                now=now, tiers=self.tiers)
        await self.announce(sub_id, {
            "type": "delivery", "subscription_id": sub_id, "webhook_id": attempted.webhook_id,
            "event_ids": [e.id for e in events], "attempt": attempts.total,
            "status_code": attempted.status_code, "outcome": attempted.result.outcome.value,
            "action": step.action.value, "reason": step.reason,
            "duration_ms": round(attempted.duration_ms, 3), "at": now})
        DELIVERY_EVENTS.labels(sub["tenant_id"], sub["stream_name"], step.action.value).inc(
            len(good))
        if step.action is NextAction.DONE:
            self.stats.delivered(sub_id, len(good))
            return
        self.stats.failed(sub_id, len(good), step.reason)
        if step.action is NextAction.RETRY:
            assert step.due_at is not None
            await self.park(sub, good, attempts, step.due_at)
        elif step.action is NextAction.DEAD_LETTER:
            await self.dead_letter(sub, good, "delivery_failed", step.reason, attempts)
        elif step.action is NextAction.DROP:
            self.stats.count(sub_id, "events_dropped", len(good))
        elif step.action is NextAction.DISABLE:
            await self.subscriptions.disable(sub["tenant_id"], sub_id, step.reason)
            if sub.get("dead_letter_enabled", True):
                await self.dead_letter(sub, good, "subscription_disabled", step.reason, attempts)

    async def observe(self, sub: dict[str, Any], attempted: Any) -> None:
        """Metrics of one attempt: a request made (outcome, duration), and the circuit state,
        asked of the breaker only when the attempt did not succeed (success means closed)."""
        tenant = sub["tenant_id"]
        if not attempted.gated and not attempted.duplicate:
            DELIVERY_ATTEMPTS.labels(tenant, sub["stream_name"],
                                     attempted.result.outcome.value).inc()
            DELIVERY_LATENCY.labels(tenant).observe(attempted.duration_ms / 1000)
        state = CircuitState.CLOSED
        if attempted.gated or attempted.result.outcome is not Outcome.SUCCESS:
            state = await self.deliverer.circuit_state(sub["webhook_url"], tenant)
        DELIVERY_CIRCUIT.labels(tenant, sub["subscription_id"]).set(CIRCUIT_LEVEL[state])

    async def park(self, sub: dict[str, Any], items: list[Item], attempts: AttemptLog,
                   due_at: float) -> None:
        """Send to the retry tier for ``due_at``; returns once the broker acked every record."""
        tier = self.tiers.choose(due_at - time.time()) or self.tiers.tiers[0]
        topic = retry_topic(self.runtime.topics, tier)
        log_json = attempts.to_json()
        futures = []
        for item in items:
            headers = [*item.headers,
                       (H_SUBSCRIPTION, sub["subscription_id"].encode()),
                       (H_TENANT, sub["tenant_id"].encode()),
                       (H_DUE_AT, f"{due_at:.3f}".encode()),
                       (H_ATTEMPTS, log_json),
                       (H_ORIGIN, "{}:{}:{}".format(*item.origin).encode())]
            futures.append(await self.runtime.producers.send(topic, item.value, key=item.key,
                                                              headers=headers))
        await asyncio.gather(*futures)
        await self.retry.parked(tier)
        # waiting in a tier: neither delivered nor in the stream lag, but still owed
        self.stats.count(sub["subscription_id"], "events_retrying", len(items))

    async def dead_letter(self, sub: dict[str, Any], items: list[Item], reason: str,
                          error: str, attempts: AttemptLog) -> None:
        tenant = sub["tenant_id"]
        detail = json.dumps({"reason": error, "attempts_total": attempts.total,
                             "attempts": json.loads(attempts.to_json())["attempts"]},
                            separators=(",", ":"))
        futures = []
        for item in items:
            headers = [*item.headers, (H_SUBSCRIPTION, sub["subscription_id"].encode()),
                       (H_TENANT, tenant.encode())]
            topic, partition, offset = item.origin
            futures.append(await send_to_dead_letters(
                self.runtime.producers, self.runtime.topics.dead_letters, key=item.key,
                value=item.value, headers=headers,
                failure=Failure(reason, "delivery", detail, topic, partition, offset,
                                redeliver_topic(self.runtime.topics, tenant), tenant)))
        await asyncio.gather(*futures)
        self.stats.count(sub["subscription_id"], "events_dead_lettered", len(items))

    async def announce(self, sub_id: str, update: dict[str, Any]) -> None:
        """Best effort: a delivery update for /ws/subscriptions/{id} (not awaited to the ack)."""
        with contextlib.suppress(EsbError):
            await self.runtime.producers.send(
                status_topic(self.runtime.topics), json.dumps(update).encode(),
                key=sub_id.encode())

    async def replay_applied(self, marker: str) -> bool:
        if self.redis is not None:
            with contextlib.suppress(Exception):
                return bool(await self.redis.exists(marker))
        return marker in self._replayed_local

    async def mark_replay_applied(self, marker: str) -> None:
        self._replayed_local.add(marker)
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.set(marker, b"1", ex=30 * 86400)


class _Runner(ConsumerLoop):
    """A delivery loop on the consumer kit; a poisoned record becomes a delivery dead letter."""

    stage = "delivery"
    tenant: str | None = None

    def __init__(self, worker: DeliveryWorker, *, group_id: str, topics: list[str],
                 **options: Any) -> None:
        super().__init__(worker.runtime, name=group_id, group_id=group_id, topics=topics,
                         **options)
        self.worker = worker

    def dead_letter_failure(self, tp: TopicPartition, record: Any, reason: str, error: str
                            ) -> Failure:
        return Failure(reason, self.stage, error, tp.topic, tp.partition, record.offset,
                       tp.topic, self.tenant)


class SubscriptionRunner(_Runner):
    """One subscription's consumer group member in this replica."""

    def __init__(self, worker: DeliveryWorker, sub: dict[str, Any]) -> None:
        lane_rank = {sub["topics"][p.value]: rank for rank, p in enumerate(LANES)}
        tenant: str = sub["tenant_id"]
        redeliver = redeliver_topic(worker.runtime.topics, tenant)
        batch_size = max(1, int(sub.get("batch_size", 1)))
        super().__init__(worker, group_id=sub["kafka_group_id"], topics=[*lane_rank, redeliver],
                         poll_timeout_ms=(int(sub.get("max_wait_time_ms", 1000))
                                          if batch_size > 1 else 100),
                         max_poll_records=max(500, batch_size * 4),
                         fetch_max_wait_ms=worker.config.fetch_max_wait_ms)
        self.sub_id: str = sub["subscription_id"]
        self.tenant = tenant
        self.generation = sub.get("generation")
        self.lane_rank = lane_rank
        self.redeliver = redeliver
        self.matcher = SubscriptionMatcher(sub.get("event_type_patterns") or ["*"],
                                           sub.get("filter_criteria") or {},
                                           sub.get("filter_expression"))
        self.batch_size = batch_size
        self.semaphore = asyncio.Semaphore(worker.config.max_partition_concurrency)
        self.paused: set[TopicPartition] = set()

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self.paused.clear()
        self.worker.stats.rebalanced(self.group_id)
        sub = self.worker.subscription(self.tenant, self.sub_id) or {}
        start = sub.get("start_offsets") or {}
        replay = sub.get("replay") or {}
        consumer = self.consumer
        assert consumer is not None
        for tp in assigned:
            name = f"{tp.topic}:{tp.partition}"
            if replay and name in replay.get("offsets", {}):
                marker = replay_marker(self.worker.runtime.topics.prefix, self.sub_id,
                                       replay["replay_id"], name)
                if not await self.worker.replay_applied(marker):
                    consumer.seek(tp, int(replay["offsets"][name]))
                    with contextlib.suppress(Exception):
                        await consumer.commit({tp: int(replay["offsets"][name])})
                    await self.worker.mark_replay_applied(marker)
                    continue
            if await consumer.committed(tp) is None and name in start:
                consumer.seek(tp, int(start[name]))

    async def on_idle(self) -> None:
        if self.paused and self.consumer is not None:
            self.consumer.resume(*self.paused)
            self.paused.clear()

    async def handle(self, batches: dict[TopicPartition, list[Any]]) -> None:
        sub = self.worker.subscription(self.tenant, self.sub_id)
        if sub is None or sub.get("status") != SubscriptionState.ACTIVE:
            # reconcile stops us; uncommitted records stay for later
            raise StopLoop(f"subscription {self.sub_id} is no longer active")
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
        if sub["delivery_mode"] == DeliveryMode.AT_MOST_ONCE:
            await self.commit(offsets)  # before any attempt: a crash now loses, never repeats
        self._prioritise(batches)
        by_rank: dict[int, list[tuple[TopicPartition, list[Any]]]] = {}
        for tp, records in batches.items():
            by_rank.setdefault(self.lane_rank.get(tp.topic, 0), []).append((tp, records))
        for rank in sorted(by_rank):
            await asyncio.gather(*(self._partition(sub, tp, records)
                                   for tp, records in by_rank[rank]))

    def _prioritise(self, batches: dict[TopicPartition, list[Any]]) -> None:
        """Pause lanes below the highest lane that has records; resume the rest."""
        consumer = self.consumer
        assert consumer is not None
        top = min((self.lane_rank[tp.topic] for tp in batches if tp.topic in self.lane_rank),
                  default=None)
        if top is None:
            return
        lower = {tp for tp in self.assigned
                 if self.lane_rank.get(tp.topic, -1) > top}
        resume = self.paused - lower
        if resume:
            consumer.resume(*resume)
        if lower - self.paused:
            consumer.pause(*(lower - self.paused))
        self.paused = lower

    async def _partition(self, sub: dict[str, Any], tp: TopicPartition, records: list[Any]
                         ) -> None:
        async with self.semaphore:
            chunk: list[Item] = []
            filtered = 0
            for rec in records:
                headers = list(rec.headers or ())
                if tp.topic == self.redeliver:
                    if _header(headers, H_SUBSCRIPTION) != self.sub_id:
                        continue
                else:
                    attrs, ctype = attributes_from_kafka_headers(headers)
                    if not self.matcher.matches(attrs, LazyPayload(rec.value or b"", ctype)):
                        filtered += 1
                        continue
                origin = (tp.topic, tp.partition, rec.offset)
                chunk.append(Item(rec.key, rec.value, _original(headers),
                                  _origin_of(headers, origin), AttemptLog()))
                if len(chunk) >= self.batch_size:
                    await self.worker.dispatch(sub, chunk, AttemptLog())
                    chunk = []
            if chunk:
                await self.worker.dispatch(sub, chunk, AttemptLog())
            self.worker.stats.count(self.sub_id, "events_filtered", filtered)


class RetryTierRunner(_Runner):
    """One delay tier: hold each partition until its head record has waited ``tier_s``."""

    commit_after_handle = False  # only up to the first record that is not ripe yet

    def __init__(self, worker: DeliveryWorker, tier_s: float) -> None:
        super().__init__(
            worker, group_id=retry_group(worker.runtime.settings.app_id, tier_s),
            topics=[retry_topic(worker.runtime.topics, tier_s)], poll_timeout_ms=200)
        self.tier_s = tier_s
        self.timers: dict[TopicPartition, asyncio.TimerHandle] = {}
        self.last_records = time.monotonic()

    def on_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            timer = self.timers.pop(tp, None)
            if timer is not None:
                timer.cancel()

    async def stop(self) -> None:
        for timer in self.timers.values():
            timer.cancel()
        await super().stop()

    def quiet_for(self) -> float:
        """Seconds since this tier last had a record or a held partition (0 while it has)."""
        if self.timers:
            return 0.0
        return time.monotonic() - self.last_records

    def _resume(self, tp: TopicPartition) -> None:
        self.timers.pop(tp, None)
        if self.consumer is not None and tp in self.assigned:
            self.consumer.resume(tp)

    async def handle(self, batches: dict[TopicPartition, list[Any]]) -> None:
        self.last_records = time.monotonic()
        await asyncio.gather(*(self._partition(tp, records) for tp, records in batches.items()))

    async def _partition(self, tp: TopicPartition, records: list[Any]) -> None:
        consumer = self.consumer
        assert consumer is not None
        done: int | None = None
        for rec in records:
            ready_at = rec.timestamp / 1000 + self.tier_s
            wait = ready_at - time.time()
            if wait > 0:  # the head is not ripe: hold this partition only, never sleep on it
                consumer.pause(tp)
                consumer.seek(tp, rec.offset)
                self.timers[tp] = asyncio.get_running_loop().call_later(wait, self._resume, tp)
                break
            await self._handle(tp, rec)
            done = rec.offset + 1
        if done is not None:
            await self.commit({tp: done})

    async def _handle(self, tp: TopicPartition, rec: Any) -> None:
        worker = self.worker
        headers = list(rec.headers or ())
        sub_id, tenant = _header(headers, H_SUBSCRIPTION), _header(headers, H_TENANT)
        sub = worker.subscription(tenant or "", sub_id or "")
        attempts = AttemptLog.from_json(_header(headers, H_ATTEMPTS))
        item = Item(rec.key, rec.value, _original(headers),
                    _origin_of(headers, (tp.topic, tp.partition, rec.offset)), attempts)
        if sub_id:
            worker.stats.count(sub_id, "events_retrying", -1)  # out of the tier, settled below
        if sub is None or sub.get("status") == SubscriptionState.CANCELLED:
            log.info("dropping retry of %s: subscription %s is gone", rec.offset, sub_id)
            return
        if sub.get("status") != SubscriptionState.ACTIVE:
            if sub.get("dead_letter_enabled", True):
                await worker.dead_letter(sub, [item], "subscription_disabled",
                                         sub.get("disabled_reason") or sub["status"], attempts)
            return
        due_at = float(_header(headers, H_DUE_AT) or 0)
        hop = worker.tiers.next_hop(due_at, time.time())
        if hop is not None:
            await worker.park(sub, [item], attempts, due_at)
            return
        await worker.dispatch(sub, [item], attempts)


class OnDemandTiers:
    """The retry tiers' consumers, each running only while its tier may hold records.

    Failed deliveries are rare, yet a tier consumer that runs for nothing costs a Fetch every
    0.5 s and a heartbeat every 3 s, five tiers per replica (ADR 0021). So a tier's consumer is
    started when this replica parks a record in it, at start-up when the tier's group has a
    backlog (parked before a restart or a crash), and when a tier topic grew since the last
    check (every ``check_s``: one ListOffsets request) and its group has a backlog (another
    replica died with one); it stops once it has been quiet (nothing parked, read or held) for
    ``idle_s`` and its group has nothing left to read. Another replica's parked records start
    that replica's own consumer, so a stopped consumer here never strands them.
    """

    check_s = 30.0
    idle_s = 120.0

    def __init__(self, worker: DeliveryWorker) -> None:
        self.worker = worker
        self.running: dict[float, RetryTierRunner] = {}
        self._last_park: dict[float, float] = {}
        self._lock = asyncio.Lock()
        settings = worker.runtime.settings
        self._offsets = OffsetReader(settings.bootstrap_servers,
                                     kafka_security_options(settings))
        #: a group-less consumer kept for ListOffsets of the tier topics (it never fetches)
        self._probe: AIOKafkaConsumer | None = None
        self._ends: dict[float, int] = {}

    def _topic(self, tier: float) -> str:
        return retry_topic(self.worker.runtime.topics, tier)

    async def ensure(self, tier: float) -> None:
        async with self._lock:
            if tier not in self.running:
                runner = RetryTierRunner(self.worker, tier)
                await runner.start()
                self.running[tier] = runner

    async def parked(self, tier: float) -> None:
        self._last_park[tier] = time.monotonic()
        await self.ensure(tier)

    async def _backlog(self, tier: float) -> int:
        rows = await self._offsets.group_lag(
            retry_group(self.worker.runtime.settings.app_id, tier), [self._topic(tier)])
        return sum(row.lag for row in rows)

    async def _grown(self) -> list[float]:
        """Tiers whose topic's end offsets moved since the last call (all, the first time)."""
        if self._probe is None:
            self._probe = build_consumer(self.worker.runtime.settings, None,
                                         client_id="esb-retry-tier-probe")
            await self._probe.start()
        grown = []
        for tier in self.worker.tiers.tiers:
            tps = await topic_partitions(self._probe, [self._topic(tier)])
            end = sum((await self._probe.end_offsets(tps)).values()) if tps else 0
            if end and self._ends.get(tier) != end:  # an empty tier has nothing to read
                grown.append(tier)
            self._ends[tier] = end
        return grown

    async def start_backlogged(self) -> None:
        """Start each tier that grew since the last look and has records its group never read."""
        try:
            grown = await self._grown()
        except Exception as exc:  # the broker is away: the next check tries again
            log.warning("retry tiers: reading end offsets failed: %s",
                        f"{type(exc).__name__}: {exc}"[:300])
            return
        for tier in grown:
            if tier in self.running:
                continue
            try:
                if await self._backlog(tier):
                    await self.ensure(tier)
            except Exception as exc:
                self._ends.pop(tier, None)  # look again next time
                log.warning("retry tier %s: backlog check failed: %s", tier_label(tier),
                            f"{type(exc).__name__}: {exc}"[:300])

    async def tend(self) -> None:
        """Start tiers with a backlog, stop those quiet for ``idle_s`` with none."""
        await self.start_backlogged()
        for tier, runner in list(self.running.items()):
            quiet = min(runner.quiet_for(), time.monotonic() - self._last_park.get(tier, 0.0))
            if quiet < self.idle_s:
                continue
            try:
                if await self._backlog(tier):
                    continue
            except Exception:  # cannot tell: keep it running
                continue
            async with self._lock:
                if self.running.get(tier) is runner and time.monotonic() - self._last_park.get(
                        tier, 0.0) >= self.idle_s:
                    del self.running[tier]
                    await runner.stop()

    async def stop(self) -> None:
        async with self._lock:
            runners, self.running = list(self.running.values()), {}
        await asyncio.gather(*(r.stop() for r in runners), return_exceptions=True)
        if self._probe is not None:
            with contextlib.suppress(Exception):
                await self._probe.stop()
