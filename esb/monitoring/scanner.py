"""The background scan: consumer lag (records and seconds) of every subscription's group and of
the worker's own groups (ingress lanes, archive projection, dead-letter indexer, processors,
retry tiers, sourcing: :mod:`esb.monitoring.groups`), and the data directory's size, every
``ESB_MONITOR_INTERVAL_S``.

Lag needs a broker round trip per group (end offsets, committed offsets, head records), so it is
computed here on a timer, never per scrape or per WebSocket push; gauges of groups that went
away are removed so dashboards do not show ghosts.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from mode import Service

from esb.delivery.lag import OffsetReader, PartitionLag
from esb.errors import redact
from esb.metrics import CONSUMER_LAG, CONSUMER_LAG_SECONDS, DATA_DIR_BYTES, LAG_SCANS
from esb.monitoring.groups import DELIVERY_STAGE, GroupSpec, topic_labels

log = logging.getLogger(__name__)

LagKey = tuple[str, str, str, str, str]  # tenant, stream, group, partition, stage


def dir_bytes(root: Path) -> int:
    """Bytes of the regular files under ``root`` (files vanishing mid-walk are skipped)."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


def lag_gauges(tenant: str, stream: str, group: str, rows: Iterable[PartitionLag],
               heads: dict[tuple[str, int], int], now_ms: int, stage: str = DELIVERY_STAGE
               ) -> dict[LagKey, tuple[int, float]]:
    """Per partition number (lanes share numbers): records behind, and the age in seconds of
    the oldest unread record among the lanes (0 when caught up)."""
    out: dict[LagKey, tuple[int, float]] = {}
    for row in rows:
        key = (tenant, stream, group, str(row.partition), stage)
        records, age = out.get(key, (0, 0.0))
        head = heads.get((row.topic, row.partition))
        if row.lag > 0 and head is not None:
            age = max(age, max(0.0, (now_ms - head) / 1000))
        out[key] = (records + row.lag, age)
    return out


def group_gauges(spec: GroupSpec, names: Any, rows: Iterable[PartitionLag],
                 heads: dict[tuple[str, int], int], now_ms: int
                 ) -> dict[LagKey, tuple[int, float]]:
    """:func:`lag_gauges` of a worker's own group, labelled per topic: tenant and stream where
    the topic names them (a stream's lanes, a tenant's ingress), the job's tenant for a
    processor, empty for shared internal topics."""
    by_labels: dict[tuple[str, str], list[PartitionLag]] = {}
    for row in rows:
        by_labels.setdefault(topic_labels(names, row.topic, spec.tenant), []).append(row)
    out: dict[LagKey, tuple[int, float]] = {}
    for (tenant, stream), part in by_labels.items():
        out.update(lag_gauges(tenant, stream, spec.group, part, heads, now_ms, spec.stage))
    return out


class LagScanner(Service):
    """Scans on a timer; ``subscriptions()`` returns every live subscription record."""

    def __init__(self, offsets: OffsetReader, subscriptions: Any, data_dir: Path,
                 interval_s: float, *, groups: Callable[[], list[GroupSpec]] = list,
                 topics: Callable[[], Awaitable[set[str]]] | None = None, names: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.offsets = offsets
        self.subscriptions = subscriptions
        self.data_dir = data_dir
        self.interval_s = interval_s
        #: the worker's own groups (:func:`esb.monitoring.groups.worker_groups`), the broker's
        #: topic list they are resolved against, and the topic naming (``runtime.topics``)
        self.groups = groups
        self.topics = topics
        self.names = names
        self._seen: set[LagKey] = set()

    @Service.task
    async def _scan_forever(self) -> None:
        while not self.should_stop:
            await self.scan_once()
            await self.sleep(self.interval_s)

    async def scan_once(self) -> None:
        try:
            gauges: dict[LagKey, tuple[int, float]] = {}
            for record in self.subscriptions():
                gauges.update(await self._scan_group(record))
            gauges.update(await self._scan_worker_groups())
            self._publish(gauges)
            DATA_DIR_BYTES.set(dir_bytes(self.data_dir))
            LAG_SCANS.labels("ok").inc()
        except Exception as exc:  # monitoring must never stop the worker
            # the broker is down (or anything else): keep the last figures, try next time
            LAG_SCANS.labels("error").inc()
            log.warning("lag scan failed: %s", redact(f"{type(exc).__name__}: {exc}")[:300])

    async def _scan_group(self, record: dict[str, Any]) -> dict[LagKey, tuple[int, float]]:
        topics = list(record["topics"].values())
        rows = await self.offsets.group_lag(record["kafka_group_id"], topics,
                                            record.get("start_offsets"))
        heads = await self.offsets.head_timestamps(rows)
        return lag_gauges(record["tenant_id"], record["stream_name"], record["subscription_id"],
                          rows, heads, int(time.time() * 1000))

    async def _scan_worker_groups(self) -> dict[LagKey, tuple[int, float]]:
        specs = self.groups()
        if not specs or self.topics is None:
            return {}
        existing = await self.topics()
        gauges: dict[LagKey, tuple[int, float]] = {}
        for spec in specs:
            topics = spec.select(existing)
            if not topics:
                continue
            rows = await self.offsets.group_lag(spec.group, topics)
            heads = await self.offsets.head_timestamps(rows)
            gauges.update(group_gauges(spec, self.names, rows, heads, int(time.time() * 1000)))
        return gauges

    def _publish(self, gauges: dict[LagKey, tuple[int, float]]) -> None:
        for key, (records, age) in gauges.items():
            CONSUMER_LAG.labels(*key).set(records)
            CONSUMER_LAG_SECONDS.labels(*key).set(age)
        for gone in self._seen - set(gauges):
            CONSUMER_LAG.remove(*gone)
            CONSUMER_LAG_SECONDS.remove(*gone)
        self._seen = set(gauges)
