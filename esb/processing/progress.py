"""Replay safety and timers shared by every stateful operator.

Idempotence approach (all operators): an operator's state is one JSON-able dict per
(processor, source partition), stored as ONE value in a changelogged table. It records the last
input offset applied per source partition (``state["offsets"]``). After a crash the table is
restored from its changelog and the uncommitted input is replayed; any input whose offset is not
above the recorded one was already applied and is skipped, so nothing is counted twice. Because
the state and its offsets are written as one value, they can never disagree. Outputs re-emitted
during a replay carry deterministic event ids (see ``lineage.derive_event_id``), so downstream
dedup by event id absorbs them.

Stream time is a watermark. Inputs that come from one ordered source (one topic partition)
advance it to their largest event time. Inputs merged from several sources (a re-keyed stream
mixes every source partition; a JOIN reads two streams) advance it to the smallest of the
sources' largest event times, like Flink's watermarks: a source catching up on a backlog does
not make the others' events late. When the sources report their progress
(:func:`drive_by_progress`), only those reports move stream time: every source holds it back
until it has reported, a source reported idle stops holding it back until it reports
again, and when all are idle it is the latest time any of them sent. Stream time never goes
back; it is ``None`` until known.

Timers are a binary heap of ``[due, key]`` lists (``heapq`` works on lists, and lists survive a
JSON round trip). Each key with pending work keeps its current due time in its own state
(``"due"``); heap entries whose due no longer matches are stale and ignored when popped, so the
heap needs no deletions.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StepResult:
    """What one input or time advance produced: outputs, late inputs, and whether skipped."""

    outputs: list[dict[str, Any]] = field(default_factory=list)
    late: list[dict[str, Any]] = field(default_factory=list)
    duplicate: bool = False


def already_applied(state: dict[str, Any], partition: int | str | None,
                    offset: int | None) -> bool:
    """True when this input offset was applied before (a replay after restart)."""
    if offset is None:
        return False
    last = state["offsets"].get(str(partition))
    return last is not None and offset <= last


def record_offset(state: dict[str, Any], partition: int | str | None, offset: int | None) -> None:
    """Remember the input as applied; call once the input is certain to be applied."""
    if offset is not None:
        state["offsets"][str(partition)] = offset


def observe_time(state: dict[str, Any], timestamp: int, source: str | None = None
                 ) -> int | None:
    """Stream time after an input of ``timestamp`` from ``source`` (``None``: one source).

    Driven by progress reports (:func:`drive_by_progress`), inputs do not move it.
    """
    if state.get("by_progress"):
        return state["stream_time"]  # type: ignore[no-any-return]
    if source is None:
        candidate: int | None = timestamp
    else:
        entry = state.setdefault("sources", {}).setdefault(source, [None, False])
        entry[0] = timestamp if entry[0] is None else max(entry[0], timestamp)
        entry[1] = False  # it sent something: not idle
        candidate = watermark(state["sources"])
    return _forward(state["stream_time"], candidate)


def drive_by_progress(state: dict[str, Any], sources: Iterable[str]) -> None:
    """Stream time from progress reports only (:func:`report_progress`), which waits until
    every one of ``sources`` has reported; inputs no longer move it. For merged inputs whose
    sources report how far they have got, like Flink's watermarks."""
    state["by_progress"] = True
    known = state.setdefault("sources", {})
    for source in sources:
        known.setdefault(source, [None, False])


def report_progress(state: dict[str, Any], reports: dict[str, Any]) -> int | None:
    """Apply sources' progress ``{source: [max event time or None, idle]}``; the new stream
    time when it moved forward, else ``None``."""
    known = state.setdefault("sources", {})
    for source, (latest, idle) in reports.items():
        entry = known.setdefault(source, [None, False])
        if latest is not None:
            entry[0] = latest if entry[0] is None else max(entry[0], latest)
        entry[1] = bool(idle)
    moved = _forward(state["stream_time"], watermark(known))
    return moved if moved != state["stream_time"] else None


def drop_sources(state: dict[str, Any], idle: set[str]) -> int | None:
    """Stop waiting for ``idle`` sources; the new stream time when it moved forward."""
    sources = state.get("sources") or {}
    hits = idle & sources.keys()
    if not hits:
        return None
    return report_progress(state, {source: [None, True] for source in hits})


def watermark(sources: dict[str, list[Any]]) -> int | None:
    """The slowest non-idle source's latest event time (``None`` while one has not reported).

    When every source is idle, all of them have caught up and nothing is in flight: the latest
    time any of them sent, so a quiet stream's results become final (Kafka Streams' stream
    time), instead of waiting for the slowest source forever.
    """
    active = [latest for latest, idle in sources.values() if not idle]
    if active:
        return None if any(latest is None for latest in active) else min(active)
    seen = [latest for latest, _ in sources.values() if latest is not None]
    return max(seen) if seen else None


def stream_time_or_earliest(state: dict[str, Any]) -> float:
    """Stream time for comparisons: before it is known, earlier than every event time."""
    current = state["stream_time"]
    return -math.inf if current is None else current


def _forward(current: int | None, candidate: int | None) -> int | None:
    if candidate is None:
        return current
    return candidate if current is None else max(current, candidate)


def schedule(timers: list[list[Any]], key_state: dict[str, Any], key: str,
             due: int | None) -> None:
    """Make ``due`` the key's next timer (``None`` cancels); an unchanged due is not re-pushed."""
    if due is None:
        key_state["due"] = None
        return
    if key_state.get("due") != due:
        key_state["due"] = due
        heapq.heappush(timers, [due, key])


def pop_due(timers: list[list[Any]], keys: dict[str, dict[str, Any]],
            before: int) -> tuple[int, str] | None:
    """Pop the earliest live timer with ``due < before``; ``None`` when none is due."""
    while timers and timers[0][0] < before:
        due, key = heapq.heappop(timers)
        key_state = keys.get(key)
        if key_state is not None and key_state.get("due") == due:
            key_state["due"] = None
            return due, key
    return None
