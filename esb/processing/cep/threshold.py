"""Threshold: at least N matching events within a sliding T per key.

On each matching event the window holds the key's not-yet-matched events with
``ts >= event.ts - T``. When it reaches N a match with those N events is emitted and the window
is emptied (non-overlapping: each event counts toward one match at most), so a sustained burst
produces one match per N events rather than one per event.
"""

from __future__ import annotations

from typing import Any

from esb.processing.cep.base import Match, View, make_match
from esb.processing.cep.models import ThresholdPattern


class ThresholdMachine:
    def __init__(self, pattern: ThresholdPattern) -> None:
        self.pattern = pattern
        self.event_types: frozenset[str] | None = frozenset({pattern.event_type})

    def new_key_state(self) -> dict[str, Any]:
        return {"events": []}

    def on_event(self, key: str, state: dict[str, Any], event: View) -> list[Match]:
        within = self.pattern.within_ms
        window = [v for v in state["events"] if v["ts"] + within >= event["ts"]] + [event]
        if len(window) < self.pattern.min_count:
            state["events"] = window
            return []
        state["events"] = []
        return [make_match(self.pattern, key, [v["id"] for v in window], window[0]["ts"],
                           window[-1]["ts"], {"event_type": self.pattern.event_type,
                                              "count": len(window),
                                              "within_ms": within})]

    def on_time(self, key: str, state: dict[str, Any], until: int) -> list[Match]:
        within = self.pattern.within_ms
        state["events"] = [v for v in state["events"] if v["ts"] + within >= until]
        return []

    def next_due(self, state: dict[str, Any]) -> int | None:
        return state["events"][0]["ts"] + self.pattern.within_ms if state["events"] else None

    def is_empty(self, state: dict[str, Any]) -> bool:
        return not state["events"]
