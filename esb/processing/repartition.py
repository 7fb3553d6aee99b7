"""Re-keying a source stream by a job's key, and exact dedup of what the re-key stage re-emits.

Why: a processor's groups (AGGREGATE/WINDOW ``group_by``), a JOIN's key and a pattern's
correlation key are rarely the key the producers partitioned the source stream by. So a keyed
job reads its sources through an internal topic ``<prefix>.proc.<job_id>.repartition`` (as many
partitions as the source stream) in which every record sits on the partition of its job key:
all events of one group meet in one state, whichever source partition they came from.

The re-key stage copies each source record (value and headers unchanged) with an ``esb-origin``
header ``<topic>:<partition>:<offset>:<floor>``. It is at-least-once: Tansu has no
transactions, so a crash between the copies' acks and the source commit copies them again, at
new offsets. Offsets of the repartition topic cannot spot those duplicates; origins can:

* ``floor`` is the source offset the copying poll started at. Every source record below it was
  copied *and acknowledged* before this copy was produced, so its first copy (same key, same
  repartition partition) sits earlier in this partition's log and was already seen here.
* at or above the highest floor seen, the partition's state remembers which origin offsets it
  applied (only those few; the set is pruned as floors advance, so it stays bounded by one
  poll's worth of records).

A record is a duplicate iff its origin offset is below that floor or in that set. This stays
exact even when one copy in a poll failed and a later one was acknowledged: the replay starts at
the committed offset, re-applies the failed one and skips the acknowledged one.

Event time across the merge: after its copies are acknowledged, the re-key stage writes a
progress record (header ``esb-progress``) to every repartition partition whenever what it knows
changed: per source it reads, the latest event time copied and whether it has caught up with the
source (idle). The runner's stream time is the slowest non-idle source's (see
:mod:`esb.processing.progress`), so merging partitions does not make events late, and because
the progress sits in the log, a replay decides exactly as the first run did.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ORIGIN_HEADER = "esb-origin"
PROGRESS_HEADER = "esb-progress"

Reports = dict[str, list[Any]]  # source key -> [latest event time or None, idle]


def progress_record(reports: Reports) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Value and headers of a progress record."""
    return json.dumps(reports, separators=(",", ":")).encode(), [(PROGRESS_HEADER, b"1")]


def parse_progress(headers: Sequence[tuple[str, bytes]], value: bytes | None
                   ) -> Reports | None:
    """The reports of a progress record; ``None`` for an ordinary (event) record."""
    if not any(key == PROGRESS_HEADER for key, _ in headers):
        return None
    try:
        reports = json.loads(value or b"{}")
        return {str(k): [v[0], bool(v[1])] for k, v in reports.items()}
    except (ValueError, TypeError, IndexError, AttributeError):
        return {}


def repartition_topic(prefix: str, job_id: str) -> str:
    return f"{prefix}.proc.{job_id}.repartition"


@dataclass(frozen=True)
class Origin:
    """Where a re-keyed record came from, and the copying poll's start offset (``floor``)."""

    topic: str
    partition: int
    offset: int
    floor: int

    @property
    def source_key(self) -> str:
        return f"{self.topic}:{self.partition}"

    def header(self) -> tuple[str, bytes]:
        return ORIGIN_HEADER, f"{self.topic}:{self.partition}:{self.offset}:{self.floor}".encode()


def with_origin(headers: Sequence[tuple[str, bytes]], origin: Origin
                ) -> list[tuple[str, bytes]]:
    """The record's headers plus its origin (an origin already present is replaced)."""
    return [*(item for item in headers if item[0] != ORIGIN_HEADER), origin.header()]


def parse_origin(headers: Sequence[tuple[str, bytes]]) -> Origin | None:
    """The origin of a re-keyed record; ``None`` when absent or malformed."""
    for key, value in headers:
        if key == ORIGIN_HEADER:
            try:
                topic, partition, offset, floor = value.decode().rsplit(":", 3)
                return Origin(topic, int(partition), int(offset), int(floor))
            except (UnicodeDecodeError, ValueError):
                return None
    return None


def seen_before(origins: dict[str, Any], origin: Origin) -> bool:
    """True when this origin was applied here before (a copy re-emitted by the re-key stage)."""
    entry = origins.get(origin.source_key)
    if entry is None:
        return False
    floor, applied = entry
    return origin.offset < max(floor, origin.floor) or origin.offset in applied


def mark_seen(origins: dict[str, Any], origin: Origin) -> None:
    """Remember an applied origin; raise the floor and forget offsets below it."""
    entry = origins.setdefault(origin.source_key, [origin.floor, []])
    if origin.floor > entry[0]:
        entry[0] = origin.floor
        entry[1] = [offset for offset in entry[1] if offset >= origin.floor]
    entry[1].append(origin.offset)
