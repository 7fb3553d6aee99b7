"""Ingress router: validates and routes CloudEvents that Kafka-native producers write to the ingress.

Kafka-native and batched rather than a per-event Faust stream: Faust's stream machinery costs about
0.1x of raw aiokafka per event on our hardware, and this is the hot path (ADR 0002). One consumer
loop per priority lane (own consumer group), so a backlog on NORMAL never delays CRITICAL.

Each tenant writes its own ingress topics, ``<prefix>.<tenant>.ingress[.lane]``; the lane's group
subscribes to all of them by pattern. The topic's tenant is authoritative (ADR 0009): a record
whose ``ce_tenantid`` names another tenant is dead-lettered, so Kafka prefix ACLs on
``<prefix>.<tenant>.`` bind a producer to its tenant. The shared ``<prefix>.ingress`` topics are
read only when ``ESB_INGRESS_SHARED_TENANT`` names the one tenant they belong to.

Each poll's records are routed from headers alone, produced with the producer's own batching, and
committed (by the consumer kit) only after every routed or dead-lettered record is acknowledged:
at-least-once; nothing acknowledged by the ingress is ever lost.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Sequence
from typing import Any

from aiokafka import TopicPartition
from mode import Service

from esb.consumer_kit import PATTERN_METADATA_MAX_AGE_MS, Batches, ConsumerLoop
from esb.deadletter import Failure, send_to_dead_letters
from esb.metrics import (
    DEAD_LETTERED,
    QUOTA_THROTTLED,
    ROUTE_LATENCY,
    ROUTED,
    ROUTER_ASSIGNED,
    flush_tally,
)
from esb.observability import tracing
from esb.publish_decision import Rejected
from esb.routing import IngressRouter
from esb.runtime import Runtime
from esb.stage_history import HISTORY_HEADER, append_stage, stage_entry
from esb.streams import on_stream_written
from esb.topics import LANES, Priority

ROUTER_ID = "proc_ingress_router"
#: the ROUTING stage (queued in the ingress from t0, routed at t1), same shape as stage_entry()
ROUTING_STAGE = (b'[{"p":"' + ROUTER_ID.encode()
                 + b'","s":"ROUTING","st":"COMPLETED","t0":%d,"t1":%d}]')


class LaneRouter(ConsumerLoop):
    """One priority lane: poll, route, produce; the kit commits in order after the acks."""

    stage = "ingress"

    def __init__(self, runtime: Runtime, router: IngressRouter, priority: Priority) -> None:
        s = runtime.settings
        group = f"{s.app_id}-router-{priority.lane}"
        super().__init__(
            runtime, name=group, group_id=group,
            pattern=runtime.topics.ingress_pattern(
                priority, shared=s.ingress_shared_tenant is not None),
            max_inflight=s.router_max_inflight_batches + 1,
            max_poll_records=s.router_max_records, fetch_max_bytes=64 << 20,
            max_partition_fetch_bytes=8 << 20,
            # a new tenant's ingress topic is looked for when its first stream is written
            # (IngressRouterService); this age is only the fallback
            metadata_max_age_ms=PATTERN_METADATA_MAX_AGE_MS)
        self.router = router
        self.priority = priority
        self.shared_tenant = s.ingress_shared_tenant
        self.routed: Counter[tuple[str, ...]] = Counter()
        self.dead: Counter[tuple[str, ...]] = Counter()
        self.oldest_ts = 0

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        ROUTER_ASSIGNED.labels(self.priority.lane).set(len(partitions))

    def tenant_of(self, topic: str) -> str | None:
        return self.runtime.topics.ingress_tenant(topic) or self.shared_tenant

    def dead_letter_failure(self, tp: TopicPartition, record: Any, reason: str, error: str
                            ) -> Failure:
        return Failure(reason, self.stage, error, tp.topic, tp.partition, record.offset,
                       tp.topic, self.tenant_of(tp.topic))

    async def handle(self, batches: Batches) -> Sequence[Awaitable[Any]]:
        runtime, router = self.runtime, self.router
        send = runtime.producers.send
        dlq = runtime.topics.dead_letters
        futures: list[asyncio.Future[Any]] = []
        routed_ms = int(time.time() * 1000)
        synced = False
        for tp, records in batches.items():
            tenant = self.tenant_of(tp.topic)
            records = await self.within_quota(tp, tenant, records)
            for rec in records:
                try:
                    try:
                        route = router.route(rec.headers, rec.key, rec.value, tenant=tenant)
                    except Rejected as first:
                        if first.dead_letter_reason != "no_route" or synced:
                            raise
                        # a stream created a moment ago on another replica? catch up once a poll
                        synced = True
                        await runtime.catalog.sync()
                        route = router.route(rec.headers, rec.key, rec.value, tenant=tenant)
                    if route.sealing is not None:  # the stream marks personal fields
                        await router.seal(route)
                except Rejected as rej:
                    futures.append(await send_to_dead_letters(
                        runtime.producers, dlq, key=rec.key, value=rec.value,
                        headers=[(k, v) for k, v in rec.headers if v is not None],
                        failure=Failure(rej.dead_letter_reason, "ingress", rej.error,
                                        tp.topic, tp.partition, rec.offset, tp.topic, tenant)))
                    self.dead[(tenant or "", "", "ingress", rej.dead_letter_reason)] += 1
                    continue
                if route.has_history:
                    route.headers = append_stage(route.headers, stage_entry(
                        ROUTER_ID, "ROUTING", rec.timestamp, routed_ms))
                else:  # the common case, formatted without a JSON encoder: this runs per event
                    route.headers.append((HISTORY_HEADER, ROUTING_STAGE % (rec.timestamp, routed_ms)))
                if tracing.ENABLED:  # off: not even a header is looked at
                    route.headers = tracing.hop("esb.route", rec.headers, route.headers, {
                        "messaging.destination.name": route.topic, "esb.tenant": route.tenant})
                futures.append(await send(route.topic, route.value, key=route.key,
                                          headers=route.headers, codec=route.codec))
                self.routed[(route.tenant, route.stream, route.lane)] += 1
            if records:
                self.oldest_ts = self.oldest_ts or records[0].timestamp
        return futures

    async def within_quota(self, tp: TopicPartition, tenant: str | None, records: list[Any]
                           ) -> list[Any]:
        """The records the tenant's publish quota lets through now (ADR 0016). The rest are
        held: this partition pauses until the budget allows them, then they are read again;
        nothing is dropped or dead-lettered, and other tenants' partitions keep flowing."""
        quota = self.runtime.publish_quota
        if tenant is None or not quota.limited(tenant):
            return records
        sizes = [len(rec.value or b"") for rec in records]
        admitted = 0
        while admitted < len(records):
            count, wait = await quota.take(tenant, sizes[admitted:])
            if count == 0:
                self.hold(tp, records[admitted].offset, wait)
                QUOTA_THROTTLED.labels(tenant, "ingress").inc()
                return records[:admitted]
            admitted += count
        return records

    async def after_commit(self) -> None:
        if self.oldest_ts:
            ROUTE_LATENCY.observe(max(0.0, time.time() - self.oldest_ts / 1000))
            self.oldest_ts = 0
        flush_tally(ROUTED, self.routed)
        flush_tally(DEAD_LETTERED, self.dead)

    async def on_rewind(self) -> None:
        self.routed.clear()
        self.dead.clear()
        self.oldest_ts = 0


class IngressRouterService(Service):
    """Runs one LaneRouter per priority lane for the life of the worker."""

    def __init__(self, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runtime = runtime
        router = IngressRouter(runtime.streams.directory,
                               max_event_bytes=runtime.settings.max_event_bytes,
                               payload_checks=runtime.payload_checks)
        self.lanes = [LaneRouter(runtime, router, p) for p in LANES]
        on_stream_written(runtime.catalog, lambda: [lane.refresh_metadata() for lane in self.lanes])

    async def on_start(self) -> None:
        for lane in self.lanes:
            await lane.start()

    async def on_stop(self) -> None:
        await asyncio.gather(*(lane.stop() for lane in self.lanes), return_exceptions=True)

    @property
    def assigned_partitions(self) -> int:
        return sum(len(lane.assigned) for lane in self.lanes)


def install(runtime: Runtime) -> IngressRouterService:
    service = IngressRouterService(runtime, loop=runtime.loop, beacon=runtime.beacon)
    runtime.add_child(service)
    return service
