"""The runtime's value per (job, source partition): operator state, offsets, metrics, counters.

Stored as ONE value in the local RocksDB store and its changelog topic, so the applied offsets,
the operator state and the metrics can never disagree after a crash. ``applied`` maps
``"<topic>:<partition>"`` (one source partition number spans every lane topic and, for JOIN, both
streams) to the last input offset applied; a replayed input at or below it is skipped, which is
what keeps results and metrics exact across a kill -9. A keyed job reads a re-keyed copy of its
sources; ``origins`` then dedups the copies the re-key stage re-emitted
(:mod:`esb.processing.repartition`).
"""

from __future__ import annotations

import json
from typing import Any

from esb.processing.metrics import ProcessorMetrics

RECENT_MATCHES = 20


def new_partition_state(operator_state: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "v": 1,
        "applied": {},
        "op": operator_state,
        "metrics": ProcessorMetrics().state,
        "counters": {"late_events": 0, "outputs_emitted": 0, "dead_lettered": 0, "retries": 0},
        "recent": [],
        "origins": {},
    }


def applied_key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def is_applied(state: dict[str, Any], topic: str, partition: int, offset: int) -> bool:
    last = state["applied"].get(applied_key(topic, partition))
    return last is not None and offset <= last


def mark_applied(state: dict[str, Any], topic: str, partition: int, offset: int) -> None:
    state["applied"][applied_key(topic, partition)] = offset


def count(state: dict[str, Any], name: str, amount: int = 1) -> None:
    state["counters"][name] = state["counters"].get(name, 0) + amount


def remember_match(state: dict[str, Any], alert: dict[str, Any]) -> None:
    """Keep the last few matches per partition for ``GET /patterns/{id}/matches``."""
    payload = alert["payload"]
    state["recent"].append({
        "alert_event_id": alert["event_id"],
        "key": payload.get("key"),
        "kind": payload.get("kind"),
        "matched_event_ids": payload.get("matched_event_ids"),
        "first_timestamp": payload.get("first_timestamp"),
        "last_timestamp": payload.get("last_timestamp"),
    })
    del state["recent"][:-RECENT_MATCHES]


def encode(state: dict[str, Any]) -> bytes:
    return json.dumps(state, separators=(",", ":")).encode()


def decode(raw: bytes) -> dict[str, Any]:
    """A saved state; wall-clock marks of the process that saved it are dropped."""
    state: dict[str, Any] = json.loads(raw)
    state.setdefault("origins", {})
    if isinstance(state.get("op"), dict):
        state["op"].pop("idle_mark", None)
    return state


def metrics_snapshot(states: list[dict[str, Any]], *, now_ms: int) -> dict[str, Any]:
    """The seed's metrics for a job from its partitions' states, plus our extra counters."""
    from esb.processing.metrics import merge_snapshots

    snapshots = [ProcessorMetrics(s["metrics"]).snapshot(now_ms=now_ms) for s in states]
    merged = merge_snapshots(snapshots) if snapshots else ProcessorMetrics().snapshot(
        now_ms=now_ms)
    totals: dict[str, int] = {"late_events": 0, "outputs_emitted": 0, "dead_lettered": 0,
                              "retries": 0}
    for state in states:
        for name, value in state.get("counters", {}).items():
            totals[name] = totals.get(name, 0) + value
    return {**merged, **totals}
