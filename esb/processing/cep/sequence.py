"""Sequence ``A → B → C`` within T per key.

Selection strategy: skip-till-next-match, non-overlapping, earliest start wins.

* Every ``A`` (the first type) starts a partial match (a "run"). Events that are not the next
  type a run waits for are skipped by that run.
* A run waiting for step ``i`` takes the first later event of type ``event_types[i]`` (every run
  waiting for that type takes it).
* A run dies when an event (or time) more than T after its first event arrives: a match needs
  ``last.ts - first.ts <= T``.
* When runs complete on an event, the one with the earliest start is emitted and ALL partial
  runs are discarded: an event belongs to at most one match, and matching restarts after it.
  The completing event does not start a new run.
* At most ``max_partial_matches`` runs are kept per key; beyond that the oldest is dropped.
"""

from __future__ import annotations

from typing import Any

from esb.processing.cep.base import Match, View, make_match
from esb.processing.cep.models import SequencePattern


class SequenceMachine:
    def __init__(self, pattern: SequencePattern) -> None:
        self.pattern = pattern
        self.steps = list(pattern.event_types)
        self.event_types: frozenset[str] | None = frozenset(self.steps)

    def new_key_state(self) -> dict[str, Any]:
        return {"runs": []}

    def on_event(self, key: str, state: dict[str, Any], event: View) -> list[Match]:
        within = self.pattern.within_ms
        runs = [run for run in state["runs"] if run[0]["ts"] + within >= event["ts"]]
        advanced: list[list[View]] = []
        completed: list[list[View]] = []
        for run in runs:
            if event["type"] == self.steps[len(run)]:
                run = [*run, event]
                (completed if len(run) == len(self.steps) else advanced).append(run)
            else:
                advanced.append(run)
        if completed:
            state["runs"] = []
            return [self._match(key, completed[0])]
        if event["type"] == self.steps[0]:
            advanced.append([event])
        state["runs"] = advanced[-self.pattern.max_partial_matches:]
        return []

    def on_time(self, key: str, state: dict[str, Any], until: int) -> list[Match]:
        within = self.pattern.within_ms
        state["runs"] = [run for run in state["runs"] if run[0]["ts"] + within >= until]
        return []

    def next_due(self, state: dict[str, Any]) -> int | None:
        if not state["runs"]:
            return None
        return min(run[0]["ts"] for run in state["runs"]) + self.pattern.within_ms

    def is_empty(self, state: dict[str, Any]) -> bool:
        return not state["runs"]

    def _match(self, key: str, run: list[View]) -> Match:
        return make_match(self.pattern, key, [view["id"] for view in run], run[0]["ts"],
                          run[-1]["ts"], {"event_types": self.steps,
                                          "within_ms": self.pattern.within_ms})
