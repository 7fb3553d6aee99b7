"""Runs one pattern over one source partition: reordering, lateness, timers, replay safety.

Out-of-order input: stream time is the largest event time seen (or given to
:meth:`PatternEngine.advance_time`); the watermark is stream time minus the pattern's grace
period. Relevant events are buffered and released to the pattern in (event time, arrival) order
once the watermark reaches their time, so patterns always see ordered input. An event older
than the watermark at its arrival is LATE: reported, never matched. Timers (expirations,
absence deadlines, bucket ends) fire when released time passes them, interleaved with events in
time order: a deadline ``d`` fires before an event with ``ts > d`` is delivered, and at the end
of a release once the watermark exceeds ``d``. Results therefore depend on the input order only,
not on how time advances were batched (except for which events are late).

State is one JSON-able dict per (pattern, partition); replay safety as in
:mod:`esb.processing.progress`.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Any

from esb.expressions import compile_expression
from esb.processing.aggregates import canonical_json
from esb.processing.cep.absence import AbsenceMachine
from esb.processing.cep.anomaly import AnomalyMachine
from esb.processing.cep.base import Match, PatternMachine
from esb.processing.cep.models import (
    AbsencePattern,
    AnomalyPattern,
    SequencePattern,
    ThresholdPattern,
)
from esb.processing.cep.sequence import SequenceMachine
from esb.processing.cep.threshold import ThresholdMachine
from esb.processing.fields import event_time_ms, expression_variables, field_value
from esb.processing.progress import (
    StepResult,
    already_applied,
    observe_time,
    pop_due,
    record_offset,
    schedule,
)

AnyPattern = SequencePattern | ThresholdPattern | AbsencePattern | AnomalyPattern


def build_machine(pattern: AnyPattern) -> PatternMachine:
    """The state machine for a pattern definition."""
    if isinstance(pattern, SequencePattern):
        return SequenceMachine(pattern)
    if isinstance(pattern, ThresholdPattern):
        return ThresholdMachine(pattern)
    if isinstance(pattern, AbsencePattern):
        return AbsenceMachine(pattern)
    return AnomalyMachine(pattern)


class PatternEngine:
    def __init__(self, pattern: AnyPattern) -> None:
        self.pattern = pattern
        self.machine = build_machine(pattern)
        self.grace_ms = pattern.grace_period_ms
        self.condition = compile_expression(pattern.condition) if pattern.condition else None

    @staticmethod
    def new_state() -> dict[str, Any]:
        return {"stream_time": None, "offsets": {}, "seq": 0, "buffer": [], "keys": {},
                "timers": []}

    def correlation_key(self, event: Mapping[str, Any]) -> str | None:
        value = field_value(event, self.pattern.key_field)
        if value is None:
            return None
        return value if isinstance(value, str) else canonical_json(value)

    def is_relevant(self, event: Mapping[str, Any]) -> bool:
        """Of a type the pattern watches and passing its condition (errors propagate)."""
        types = self.machine.event_types
        if types is not None and event.get("event_type") not in types:
            return False
        return self.condition is None or self.condition.matches(expression_variables(event))

    def process(self, state: dict[str, Any], event: Mapping[str, Any], *,
                partition: int | str | None = None, offset: int | None = None,
                source: str | None = None) -> StepResult:
        """Take one event; returns the matches it released and whether it was late."""
        if already_applied(state, partition, offset):
            return StepResult(duplicate=True)
        timestamp = event_time_ms(event)
        key = self.correlation_key(event)
        relevant = key is not None and self.is_relevant(event)
        record_offset(state, partition, offset)
        result = StepResult()
        previous = state["stream_time"]
        if previous is not None and timestamp < previous - self.grace_ms:
            if relevant:
                result.late.append({"event_id": event.get("event_id"), "key": key,
                                    "timestamp": timestamp, "partition": partition,
                                    "offset": offset, "reason": "older_than_watermark"})
            return result
        state["stream_time"] = observe_time(state, timestamp, source)
        if relevant:
            state["seq"] += 1
            view = {"id": str(event.get("event_id")), "type": event.get("event_type"),
                    "ts": timestamp}
            heapq.heappush(state["buffer"], [timestamp, state["seq"], key, view])
        result.outputs = self._release(state)
        return result

    def advance_time(self, state: dict[str, Any], now: int) -> StepResult:
        """Move stream time to ``now`` (wall clock or a partition watermark) and fire timers."""
        if state["stream_time"] is None or now > state["stream_time"]:
            state["stream_time"] = now
        return StepResult(outputs=self._release(state))

    def _release(self, state: dict[str, Any]) -> list[Match]:
        if state["stream_time"] is None:
            return []  # not every source has reported yet
        watermark = state["stream_time"] - self.grace_ms
        buffer = state["buffer"]
        matches: list[Match] = []
        while buffer and buffer[0][0] <= watermark:
            timestamp, _, key, view = heapq.heappop(buffer)
            matches.extend(self._fire_timers(state, before=timestamp))
            key_state = state["keys"].get(key) or self.machine.new_key_state()
            state["keys"][key] = key_state
            matches.extend(self.machine.on_event(key, key_state, view))
            self._settle(state, key, key_state)
        matches.extend(self._fire_timers(state, before=watermark))
        return matches

    def _fire_timers(self, state: dict[str, Any], *, before: int) -> list[Match]:
        matches: list[Match] = []
        while (popped := pop_due(state["timers"], state["keys"], before)) is not None:
            due, key = popped
            key_state = state["keys"][key]
            matches.extend(self.machine.on_time(key, key_state, due + 1))
            self._settle(state, key, key_state)
        return matches

    def _settle(self, state: dict[str, Any], key: str, key_state: dict[str, Any]) -> None:
        if self.machine.is_empty(key_state):
            del state["keys"][key]
        else:
            schedule(state["timers"], key_state, key, self.machine.next_due(key_state))
