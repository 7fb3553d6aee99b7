"""Inner stream-stream JOIN on a key within a time window.

A left event ``l`` and a right event ``r`` join when their keys are equal and
``|l.time - r.time| <= window``. Each pair is emitted exactly once, when the later-arriving of the
two arrives, in the stored (arrival) order of its partners. Events without a key never join.

Stream time is the largest event time seen on either side; the watermark is stream time minus
grace. An event older than the watermark at its arrival is LATE (reported, not joined). Stored
events are dropped once ``time < watermark - window``: no non-late event can pair with them any
more, so state is bounded by ``window + grace`` of event time. Replay safety: offsets per
``side:partition`` (see :mod:`esb.processing.progress`).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Any, Literal

from esb.processing.aggregates import canonical_json
from esb.processing.fields import event_time_ms, field_value
from esb.processing.progress import StepResult, already_applied, observe_time, record_offset

Side = Literal["left", "right"]


class StreamJoin:
    def __init__(self, *, window_ms: int, left_key: str, right_key: str | None = None,
                 grace_ms: int = 0) -> None:
        if window_ms < 0 or grace_ms < 0:
            raise ValueError("window_ms and grace_ms must be >= 0")
        self.window_ms = window_ms
        self.grace_ms = grace_ms
        self.key_paths: dict[str, str] = {"left": left_key, "right": right_key or left_key}

    @classmethod
    def from_definition(cls, definition: Any) -> StreamJoin:
        logic, window = definition.logic, definition.window_config
        window_ms = logic.join_window_ms or window.window_size_ms
        grace = logic.grace_period_ms
        if grace is None:
            grace = window.grace_period_ms if window is not None else 0
        return cls(window_ms=window_ms, left_key=logic.left_key, right_key=logic.right_key,
                   grace_ms=grace)

    @staticmethod
    def new_state() -> dict[str, Any]:
        return {"stream_time": None, "offsets": {}, "left": {}, "right": {}, "expiry": []}

    def advance(self, state: dict[str, Any], stream_time: int) -> StepResult:
        """Move stream time forward without an event (drops pairs that can no longer join)."""
        if state["stream_time"] is None or stream_time > state["stream_time"]:
            state["stream_time"] = stream_time
            self._expire(state)
        return StepResult()

    def process(self, state: dict[str, Any], side: Side, event: Mapping[str, Any], *,
                partition: int | str | None = None, offset: int | None = None,
                source: str | None = None) -> StepResult:
        """Add one event of ``side``; outputs are ``{key, left, right}`` pairs."""
        if side not in ("left", "right"):
            raise ValueError(f"side must be 'left' or 'right', not {side!r}")
        timestamp = event_time_ms(event)
        key = field_value(event, self.key_paths[side])
        if already_applied(state, f"{side}:{partition}", offset):
            return StepResult(duplicate=True)
        record_offset(state, f"{side}:{partition}", offset)
        result = StepResult()
        previous = state["stream_time"]
        if previous is not None and timestamp < previous - self.grace_ms:
            result.late.append({"side": side, "event_id": event.get("event_id"),
                                "timestamp": timestamp, "partition": partition,
                                "offset": offset, "reason": "older_than_watermark"})
            return result
        state["stream_time"] = observe_time(state, timestamp, source)
        self._expire(state)
        if key is None:
            return result
        text_key = canonical_json(key)
        other: Side = "right" if side == "left" else "left"
        for stored_time, stored in state[other].get(text_key, []):
            if abs(stored_time - timestamp) <= self.window_ms:
                left, right = (event, stored) if side == "left" else (stored, event)
                result.outputs.append({"key": key, "left": dict(left), "right": dict(right)})
        state[side].setdefault(text_key, []).append([timestamp, dict(event)])
        heapq.heappush(state["expiry"], [timestamp, side, text_key])
        return result

    def _expire(self, state: dict[str, Any]) -> None:
        if state["stream_time"] is None:
            return
        limit = state["stream_time"] - self.grace_ms - self.window_ms
        expiry = state["expiry"]
        while expiry and expiry[0][0] < limit:
            _, side, key = heapq.heappop(expiry)
            kept = [item for item in state[side].get(key, []) if item[0] >= limit]
            if kept:
                state[side][key] = kept
            else:
                state[side].pop(key, None)
