"""Per-processor counters behind ``GET /api/v1/stream-processors/{id}/metrics``.

Field meanings (the seed gives names and an example, not definitions):

* ``events_processed`` = ``events_passed`` + ``events_filtered`` (inputs handled without error;
  the seed's example adds up this way). ``error_count`` counts inputs that raised.
* ``events_per_second``: inputs handled (including errors) in the last ``rate_window_s``
  seconds, divided by that window (or by the time since the first input, if shorter).
* ``processing_rate``: the percentage of inputs handled without error.
* ``avg_processing_time_ms``: mean time spent per input.

The accumulator never reads the clock: callers pass times, so it is deterministic and testable.
Its state is a JSON-able dict; :func:`merge_snapshots` combines the snapshots of the replicas
running one processor (``parallelism`` > 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from esb.processing.fields import from_epoch_ms

Outcome = Literal["passed", "filtered", "error"]


class ProcessorMetrics:
    def __init__(self, state: dict[str, Any] | None = None, *, rate_window_s: int = 60) -> None:
        self.rate_window_s = rate_window_s
        self.state: dict[str, Any] = state if state is not None else {
            "passed": 0, "filtered": 0, "errors": 0, "time_ms_total": 0.0,
            "first_at_ms": None, "last_at_ms": None, "per_second": {},
        }

    def record(self, outcome: Outcome, *, duration_ms: float, at_ms: int) -> None:
        """Count one input handled at ``at_ms`` (epoch ms) that took ``duration_ms``."""
        if outcome not in ("passed", "filtered", "error"):
            raise ValueError(f"unknown outcome {outcome!r}")
        if duration_ms < 0:
            raise ValueError("duration_ms must be >= 0")
        state = self.state
        state["errors" if outcome == "error" else outcome] += 1
        state["time_ms_total"] += duration_ms
        if state["first_at_ms"] is None or at_ms < state["first_at_ms"]:
            state["first_at_ms"] = at_ms
        if state["last_at_ms"] is None or at_ms > state["last_at_ms"]:
            state["last_at_ms"] = at_ms
        second = str(at_ms // 1000)
        state["per_second"][second] = state["per_second"].get(second, 0) + 1
        self._trim(at_ms)

    def _trim(self, now_ms: int) -> None:
        oldest = now_ms // 1000 - self.rate_window_s
        buckets = self.state["per_second"]
        for second in [s for s in buckets if int(s) <= oldest]:
            del buckets[second]

    def snapshot(self, *, now_ms: int) -> dict[str, Any]:
        """The seed's metrics fields as of ``now_ms``."""
        state = self.state
        processed = state["passed"] + state["filtered"]
        handled = processed + state["errors"]
        window_start_s = now_ms // 1000 - self.rate_window_s
        recent = sum(n for s, n in state["per_second"].items()
                     if window_start_s < int(s) <= now_ms // 1000)
        span_s = float(self.rate_window_s)
        if state["first_at_ms"] is not None:
            span_s = min(span_s, max((now_ms - state["first_at_ms"]) / 1000, 1.0))
        return {
            "events_processed": processed,
            "events_passed": state["passed"],
            "events_filtered": state["filtered"],
            "events_per_second": round(recent / span_s, 2),
            "processing_rate": round(100.0 * processed / handled, 2) if handled else 100.0,
            "avg_processing_time_ms": (
                round(state["time_ms_total"] / handled, 3) if handled else 0.0
            ),
            "error_count": state["errors"],
            "last_processed_at": (
                from_epoch_ms(state["last_at_ms"]) if state["last_at_ms"] is not None else None
            ),
        }


def merge_snapshots(snapshots: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One processor's metrics from its replicas' snapshots (sums, weighted means, latest)."""
    processed = sum(s["events_processed"] for s in snapshots)
    errors = sum(s["error_count"] for s in snapshots)
    handled = processed + errors
    weighted_time = sum(s["avg_processing_time_ms"] * (s["events_processed"] + s["error_count"])
                        for s in snapshots)
    last = [s["last_processed_at"] for s in snapshots if s["last_processed_at"]]
    return {
        "events_processed": processed,
        "events_passed": sum(s["events_passed"] for s in snapshots),
        "events_filtered": sum(s["events_filtered"] for s in snapshots),
        "events_per_second": round(sum(s["events_per_second"] for s in snapshots), 2),
        "processing_rate": round(100.0 * processed / handled, 2) if handled else 100.0,
        "avg_processing_time_ms": round(weighted_time / handled, 3) if handled else 0.0,
        "error_count": errors,
        "last_processed_at": max(last) if last else None,
    }
