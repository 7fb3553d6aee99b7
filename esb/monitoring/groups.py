"""The worker's own consumer groups, for the lag scan (ADR 0020): ingress lanes, the archive
projection, the dead-letter indexer, processors and patterns (and their re-key stage), delivery
retry tiers, and the event-sourcing owner (Faust's group on the command topic). Each is
labelled with its loop's stage (``ingress``, ``projection``, ``deadletter-index``,
``processor``, ``delivery-retry``, ``sourcing``); ``delivery`` is kept for subscriptions.

Read from the loops the worker runs right now, never from a list of names kept here, so a
renamed group or a job started a moment ago is scanned on the next turn. A group that reads by
pattern (ingress lanes, the projection) is resolved against the broker's topic list, read once
per scan. Subscriptions' groups are scanned from the catalog (:mod:`esb.monitoring.scanner`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["GroupSpec", "spec_of", "topic_labels", "worker_groups"]

#: ``stage`` label of subscriptions' groups (the delivery runners'), and of the retry tiers'
DELIVERY_STAGE = "delivery"
RETRY_STAGE = "delivery-retry"


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """One consumer group to scan: its id, the stage that runs it, what it reads."""

    group: str
    stage: str
    topics: tuple[str, ...] = ()
    pattern: str | None = None
    #: the group belongs to one tenant (a processor); else each topic names its tenant, if any
    tenant: str | None = None

    def select(self, existing: Iterable[str]) -> list[str]:
        """The topics this group reads among those the broker has (as aiokafka matches a
        pattern subscription: ``re.match``)."""
        if self.pattern is None:
            have = set(existing)
            return [t for t in self.topics if t in have]
        rx = re.compile(self.pattern)
        return sorted(t for t in existing if rx.match(t))


def spec_of(loop: Any, tenant: str | None = None) -> GroupSpec:
    """The group of a consumer-kit loop (anything with ``group_id``, ``stage``, ``topics``,
    ``pattern``)."""
    return GroupSpec(loop.group_id, loop.stage, tuple(loop.topics), loop.pattern, tenant)


def topic_labels(names: Any, topic: str, tenant: str | None = None) -> tuple[str, str]:
    """(tenant, stream) labels of a topic: a stream lane names both, a tenant's ingress topic
    its tenant; shared internal topics (dead letters, retry tiers, commands) neither, unless
    the group belongs to one tenant."""
    parsed = names.parse_stream_topic(topic)
    if parsed is not None:
        return tenant or parsed[0], parsed[1]
    return tenant or names.ingress_tenant(topic) or "", ""


def worker_groups(app: Any) -> list[GroupSpec]:
    """Every consumer group this worker is a member of, except subscriptions' (one spec per
    group id, first wins: a job's consumers share theirs)."""
    loops: list[tuple[Any, str | None]] = []
    router = getattr(app, "ingress_router", None)
    if router is not None:
        loops += [(lane, None) for lane in router.lanes]
    projection = getattr(app, "projection", None)
    if projection is not None:
        loops.append((projection.loop_, None))
    index = getattr(app, "deadletter_index", None)
    if index is not None:
        loops.append((index.indexer, None))
    processing = getattr(app, "processing", None)
    if processing is not None:
        for _fingerprint, runners in list(processing.worker.runners.values()):
            loops += [(runner, runner.job.tenant) for runner in runners]
    out: dict[str, GroupSpec] = {}
    for loop, tenant in loops:
        if loop.group_id:
            out.setdefault(loop.group_id, spec_of(loop, tenant))
    delivery = getattr(app, "delivery", None)
    if delivery is not None:  # their loops' stage is "delivery", which names subscriptions here
        for runner in delivery.worker.retry_runners:
            out.setdefault(runner.group_id, GroupSpec(runner.group_id, RETRY_STAGE,
                                                      tuple(runner.topics)))
    sourcing = getattr(app, "sourcing", None)
    if sourcing is not None:  # the owner agent is Faust's: its group is the app id
        out.setdefault(app.conf.id, GroupSpec(
            app.conf.id, "sourcing", (sourcing.tables.commands.get_topic_name(),)))
    return list(out.values())


async def list_topics(settings: Any) -> set[str]:
    """Every topic the broker has (one metadata request), through the consumer kit's options."""
    from esb.consumer_kit import build_consumer

    consumer = build_consumer(settings, None, client_id=f"{settings.app_id}-lag-scan")
    await consumer.start()
    try:
        return set(await consumer.topics())
    finally:
        await consumer.stop()


TopicLister = Callable[[], Any]  # async () -> set[str]
