"""Absence: A not followed by B within T, per key, fired by time.

Each A waits for a B with ``A.ts <= B.ts <= A.ts + T`` (B processed after A in event-time
order). One B satisfies every A waiting on that key. When time passes ``A.ts + T`` with no such
B (an event or watermark later than the deadline), a match carrying A's id is emitted, so the
alert comes even if the key never sees another event. If A and B are the same type, an event
first satisfies the waiting ones and then waits itself.
"""

from __future__ import annotations

from typing import Any

from esb.processing.cep.base import Match, View, make_match
from esb.processing.cep.models import AbsencePattern


class AbsenceMachine:
    def __init__(self, pattern: AbsencePattern) -> None:
        self.pattern = pattern
        self.event_types: frozenset[str] | None = frozenset(
            {pattern.trigger_event_type, pattern.expected_event_type}
        )

    def new_key_state(self) -> dict[str, Any]:
        return {"pending": []}

    def on_event(self, key: str, state: dict[str, Any], event: View) -> list[Match]:
        matches = self.on_time(key, state, event["ts"])  # normally already fired by the engine
        if event["type"] == self.pattern.expected_event_type:
            state["pending"] = []
        if event["type"] == self.pattern.trigger_event_type:
            state["pending"].append(event)
        return matches

    def on_time(self, key: str, state: dict[str, Any], until: int) -> list[Match]:
        within = self.pattern.within_ms
        expired = [v for v in state["pending"] if v["ts"] + within < until]
        state["pending"] = [v for v in state["pending"] if v["ts"] + within >= until]
        return [
            make_match(self.pattern, key, [v["id"]], v["ts"], v["ts"], {
                "trigger_event_type": self.pattern.trigger_event_type,
                "expected_event_type": self.pattern.expected_event_type,
                "within_ms": within,
                "deadline": v["ts"] + within,
            })
            for v in expired
        ]

    def next_due(self, state: dict[str, Any]) -> int | None:
        return state["pending"][0]["ts"] + self.pattern.within_ms if state["pending"] else None

    def is_empty(self, state: dict[str, Any]) -> bool:
        return not state["pending"]
