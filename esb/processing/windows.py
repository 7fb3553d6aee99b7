"""Event-time windows (tumbling, hopping, session) as plain JSON-able state.

Faust's windowed tables have no session windows and ``on_window_close`` does not receive the
value, so windows are kept here as ordinary state under our own keys.

Definitions (all times are integer epoch milliseconds, windows are half-open ``[start, end)``):

* tumbling(size): the one window ``[t - t mod size, … + size)``.
* hopping(size, advance): every ``[k·advance, k·advance + size)`` that contains ``t``.
* session(gap): each event covers ``[t, t + gap)``; a session is a maximal union of overlapping
  covers, so a session is ``[first, last + gap)``. An event whose cover overlaps two sessions
  merges them (touching covers do not merge).

Stream time is the largest event time seen so far (or an explicit :meth:`advance`). A window
closes, and its result is emitted exactly once, when ``stream time >= end + grace``. An event is
LATE when every window it belongs to is already closed at its arrival (stream time taken after
including the event itself); a late event changes nothing and is reported so the caller can
count and dead-letter it. For hopping windows an event may be accepted by its still-open windows
while its already-closed windows ignore it. For sessions an event is also late when it would
reach into a session of its key that has already closed (``t < closed_until``): an emitted
session is never re-opened.

Out-of-order events within the grace period are simply added to their (still open) windows.
Outputs within one step are ordered by (window end, window start, key), so results depend only
on the input order. Replay safety: see :mod:`esb.processing.progress`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from esb.errors import ValidationFailed
from esb.processing.progress import (
    StepResult,
    already_applied,
    observe_time,
    pop_due,
    record_offset,
    schedule,
    stream_time_or_earliest,
)

WindowKind = Literal["tumbling", "hopping", "session"]


@dataclass(frozen=True)
class WindowSpec:
    """Validated window parameters (build from the API model with ``from_config``)."""

    kind: WindowKind
    size_ms: int = 0
    advance_ms: int = 0
    gap_ms: int = 0
    grace_ms: int = 0

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.kind in ("tumbling", "hopping") and self.size_ms <= 0:
            problems.append(f"{self.kind} windows need size_ms > 0")
        if self.kind == "hopping" and not 0 < self.advance_ms <= self.size_ms:
            problems.append("hopping windows need 0 < advance_ms <= size_ms")
        if self.kind == "session" and self.gap_ms <= 0:
            problems.append("session windows need gap_ms > 0")
        if self.kind not in ("tumbling", "hopping", "session"):
            problems.append(f"unknown window kind {self.kind!r}")
        if self.grace_ms < 0:
            problems.append("grace_ms must be >= 0")
        if problems:
            raise ValidationFailed(
                "invalid window specification",
                errors=[{"path": "window_config", "message": p} for p in problems],
            )

    @classmethod
    def from_config(cls, config: Any) -> WindowSpec:
        """From a :class:`esb.processing.models.WindowConfig` (or anything with its fields)."""
        return cls(
            kind=config.window_type,
            size_ms=config.window_size_ms or 0,
            advance_ms=config.advance_ms or config.window_size_ms or 0,
            gap_ms=config.gap_ms or 0,
            grace_ms=config.grace_period_ms or 0,
        )


def assign_windows(spec: WindowSpec, timestamp: int) -> list[tuple[int, int]]:
    """The windows an event time belongs to, ascending (a session's own cover before merging)."""
    if spec.kind == "tumbling":
        start = timestamp - timestamp % spec.size_ms
        return [(start, start + spec.size_ms)]
    if spec.kind == "hopping":
        start = timestamp - timestamp % spec.advance_ms
        windows = []
        while start + spec.size_ms > timestamp:
            windows.append((start, start + spec.size_ms))
            start -= spec.advance_ms
        return windows[::-1]
    return [(timestamp, timestamp + spec.gap_ms)]


class Accumulator(Protocol):
    """How a window folds values; accumulators are JSON-able values, never mutated in place."""

    def create(self) -> Any: ...

    def add(self, acc: Any, value: Any, *, event_id: str, seq: int) -> Any: ...

    def merge(self, first: Any, second: Any) -> Any: ...

    def result(self, acc: Any) -> Any: ...


class WindowedAggregator:
    """The window state machine for one processor and source partition.

    ``state`` (from :meth:`new_state`) is a plain dict, mutated in place and JSON round-trippable.
    Keys are caller-chosen strings (a group key).
    """

    def __init__(self, spec: WindowSpec, accumulator: Accumulator, *,
                 max_input_ids: int = 100) -> None:
        self.spec = spec
        self.accumulator = accumulator
        self.max_input_ids = max_input_ids

    @staticmethod
    def new_state() -> dict[str, Any]:
        return {"stream_time": None, "offsets": {}, "seq": 0, "keys": {}, "timers": []}

    def ingest(self, state: dict[str, Any], key: str, event_id: str, timestamp: int, value: Any,
               *, partition: int | str | None = None, offset: int | None = None,
               source: str | None = None) -> StepResult:
        """Apply one event; returns the windows it closed and, if it was late, the event."""
        if already_applied(state, partition, offset):
            return StepResult(duplicate=True)
        record_offset(state, partition, offset)
        state["seq"] += 1
        seq = state["seq"]
        state["stream_time"] = observe_time(state, timestamp, source)
        accepted = (
            self._add_to_session(state, key, event_id, timestamp, value, seq)
            if self.spec.kind == "session"
            else self._add_to_windows(state, key, event_id, timestamp, value, seq)
        )
        result = StepResult(outputs=self._close_due(state))
        if not accepted:
            result.late.append({"key": key, "event_id": event_id, "timestamp": timestamp,
                                "partition": partition, "offset": offset,
                                "reason": "window_closed"})
        return result

    def advance(self, state: dict[str, Any], stream_time: int) -> StepResult:
        """Move stream time forward without an event (idle partitions still close windows)."""
        if state["stream_time"] is None or stream_time > state["stream_time"]:
            state["stream_time"] = stream_time
        return StepResult(outputs=self._close_due(state))

    # -- adding ------------------------------------------------------------------------------

    def _key_state(self, state: dict[str, Any], key: str) -> dict[str, Any]:
        return state["keys"].setdefault(key, {"windows": [], "closed_until": None, "due": None})

    def _new_window(self, start: int, end: int) -> dict[str, Any]:
        return {"start": start, "end": end, "acc": self.accumulator.create(), "count": 0,
                "ids": []}

    def _add_value(self, window: dict[str, Any], event_id: str, value: Any, seq: int) -> None:
        window["acc"] = self.accumulator.add(window["acc"], value, event_id=event_id, seq=seq)
        window["count"] += 1
        if len(window["ids"]) < self.max_input_ids:
            window["ids"].append([seq, event_id])

    def _add_to_windows(self, state: dict[str, Any], key: str, event_id: str, timestamp: int,
                        value: Any, seq: int) -> bool:
        now, grace = stream_time_or_earliest(state), self.spec.grace_ms
        open_bounds = [(s, e) for s, e in assign_windows(self.spec, timestamp) if e + grace > now]
        if not open_bounds:
            return False
        key_state = self._key_state(state, key)
        windows = key_state["windows"]
        for start, end in open_bounds:
            window = next((w for w in windows if w["start"] == start), None)
            if window is None:
                window = self._new_window(start, end)
                windows.append(window)
                windows.sort(key=lambda w: w["start"])
            self._add_value(window, event_id, value, seq)
        self._reschedule(state, key, key_state)
        return True

    def _add_to_session(self, state: dict[str, Any], key: str, event_id: str, timestamp: int,
                        value: Any, seq: int) -> bool:
        now, gap, grace = stream_time_or_earliest(state), self.spec.gap_ms, self.spec.grace_ms
        key_state = state["keys"].get(key)
        sessions = key_state["windows"] if key_state else []
        touching = [w for w in sessions if w["start"] < timestamp + gap and timestamp < w["end"]]
        last = max([timestamp, *(w["last"] for w in touching)])
        closed_until = key_state["closed_until"] if key_state else None
        if (closed_until is not None and timestamp < closed_until) or last + gap + grace <= now:
            return False
        key_state = self._key_state(state, key)
        merged = self._new_window(min([timestamp, *(w["start"] for w in touching)]), last + gap)
        merged["last"] = last
        for window in touching:  # already sorted by start
            merged["acc"] = self.accumulator.merge(merged["acc"], window["acc"])
            merged["count"] += window["count"]
            merged["ids"].extend(window["ids"])
        merged["ids"] = sorted(merged["ids"])[: self.max_input_ids]
        self._add_value(merged, event_id, value, seq)
        merged_away = {id(w) for w in touching}
        remaining = [w for w in key_state["windows"] if id(w) not in merged_away]
        key_state["windows"] = sorted([*remaining, merged], key=lambda w: w["start"])
        self._reschedule(state, key, key_state)
        return True

    # -- closing -----------------------------------------------------------------------------

    def _next_due(self, key_state: dict[str, Any]) -> int | None:
        grace = self.spec.grace_ms
        if key_state["windows"]:
            return min(w["end"] for w in key_state["windows"]) + grace
        if self.spec.kind == "session" and key_state["closed_until"] is not None:
            # Until then a new event could still reach into the closed session: keep the key.
            return key_state["closed_until"] + self.spec.gap_ms + grace
        return None

    def _reschedule(self, state: dict[str, Any], key: str, key_state: dict[str, Any]) -> None:
        due = self._next_due(key_state)
        if due is None:
            del state["keys"][key]
        else:
            schedule(state["timers"], key_state, key, due)

    def _close_due(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        now, grace = state["stream_time"], self.spec.grace_ms
        closed: list[dict[str, Any]] = []
        if now is None:
            return closed  # not every source has reported yet
        while (popped := pop_due(state["timers"], state["keys"], now + 1)) is not None:
            key = popped[1]
            key_state = state["keys"][key]
            keep = []
            for window in key_state["windows"]:
                if window["end"] + grace <= now:
                    closed.append(self._result(key, window))
                    if self.spec.kind == "session":
                        previous = key_state["closed_until"]
                        key_state["closed_until"] = (
                            window["end"] if previous is None else max(previous, window["end"])
                        )
                else:
                    keep.append(window)
            key_state["windows"] = keep
            if (not keep and self.spec.kind == "session"
                    and key_state["closed_until"] + self.spec.gap_ms + grace <= now):
                key_state["closed_until"] = None
            self._reschedule(state, key, key_state)
        closed.sort(key=lambda r: (r["window_end"], r["window_start"], r["key"]))
        return closed

    def _result(self, key: str, window: dict[str, Any]) -> dict[str, Any]:
        return {
            "key": key,
            "window_start": window["start"],
            "window_end": window["end"],
            "value": self.accumulator.result(window["acc"]),
            "event_count": window["count"],
            "input_event_ids": [event_id for _, event_id in window["ids"]],
            "input_event_ids_truncated": window["count"] > len(window["ids"]),
        }
