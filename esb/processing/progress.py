"""Replay safety and timers shared by every stateful operator.

Idempotence approach (all operators): an operator's state is one JSON-able dict per
(processor, source partition), stored as ONE value in a changelogged table. It records the last
input offset applied per source partition (``state["offsets"]``). After a crash the table is
restored from its changelog and the uncommitted input is replayed; any input whose offset is not
above the recorded one was already applied and is skipped, so nothing is counted twice. Because
the state and its offsets are written as one value, they can never disagree. Outputs re-emitted
during a replay carry deterministic event ids (see ``lineage.derive_event_id``), so downstream
dedup by event id absorbs them.

Timers are a binary heap of ``[due, key]`` lists (``heapq`` works on lists, and lists survive a
JSON round trip). Each key with pending work keeps its current due time in its own state
(``"due"``); heap entries whose due no longer matches are stale and ignored when popped, so the
heap needs no deletions.
"""

from __future__ import annotations

import heapq
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
