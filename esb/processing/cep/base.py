"""What every pattern state machine implements, and the match record they emit.

Machines see one key's events in event-time order (the engine reorders them) as compact views
``{"id", "type", "ts"}``, and are told about time through ``on_time(until)``: no event with
``ts < until`` will be delivered any more. Per-key state is a JSON-able dict owned by the
machine, except the ``"due"`` entry, which belongs to the engine's timer bookkeeping.
"""

from __future__ import annotations

from typing import Any, Protocol

View = dict[str, Any]
Match = dict[str, Any]


class PatternMachine(Protocol):
    event_types: frozenset[str] | None  # None: every event type

    def new_key_state(self) -> dict[str, Any]: ...

    def on_event(self, key: str, state: dict[str, Any], event: View) -> list[Match]: ...

    def on_time(self, key: str, state: dict[str, Any], until: int) -> list[Match]: ...

    def next_due(self, state: dict[str, Any]) -> int | None: ...

    def is_empty(self, state: dict[str, Any]) -> bool: ...


def make_match(pattern: Any, key: str, event_ids: list[str], first: int, last: int,
               details: dict[str, Any]) -> Match:
    """The plain-dict match every pattern kind emits."""
    return {
        "pattern_id": pattern.pattern_id,
        "kind": pattern.kind,
        "key": key,
        "matched_event_ids": event_ids,
        "first_timestamp": first,
        "last_timestamp": last,
        "details": details,
    }
