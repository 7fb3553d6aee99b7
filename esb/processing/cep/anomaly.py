"""Anomaly in a key's event rate: events per bucket against its recent history.

Buckets are tumbling ``[k·bucket_ms, (k+1)·bucket_ms)`` in event time, starting with the key's
first event; empty buckets count as 0 (a rate drop is an anomaly too). A bucket is evaluated
when it closes (a later event or the watermark reaches its end), then joins the history.

* zscore: history = the last ``history_buckets`` counts; with at least ``min_history`` of them,
  the bucket is anomalous when ``|x - mean| > threshold · std`` (population std). The test is
  done in exact rational arithmetic, so it never flips on rounding; with std 0 any change is
  anomalous.
* ewma: mean ``m`` and variance ``v`` are exponentially weighted (``alpha``): with
  ``d = x - m``, anomalous when ``d² > threshold² · v`` (after ``min_history`` buckets), then
  ``m += alpha·d`` and ``v = (1 - alpha)·(v + alpha·d²)``.

A key with ``history_buckets`` consecutive empty buckets is forgotten (its drop to zero has been
evaluated by then); its next event starts a fresh history. This bounds the work for idle keys.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from esb.processing.cep.base import Match, View, make_match
from esb.processing.cep.models import AnomalyPattern


class AnomalyMachine:
    def __init__(self, pattern: AnomalyPattern) -> None:
        self.pattern = pattern
        self.event_types: frozenset[str] | None = (
            None if pattern.event_type is None else frozenset({pattern.event_type})
        )
        self._threshold_squared = Fraction(pattern.threshold) ** 2

    def new_key_state(self) -> dict[str, Any]:
        return {}

    def on_event(self, key: str, state: dict[str, Any], event: View) -> list[Match]:
        size = self.pattern.bucket_ms
        bucket = event["ts"] - event["ts"] % size
        matches: list[Match] = []
        while "bucket" in state and state["bucket"] < bucket:
            matches.extend(self._close_bucket(key, state))
        if "bucket" not in state:
            state.update({"bucket": bucket, "count": 0, "ids": [], "history": [],
                          "mean": None, "var": 0.0, "seen": 0, "idle": 0})
        state["count"] += 1
        if len(state["ids"]) < self.pattern.max_event_ids:
            state["ids"].append(event["id"])
        return matches

    def on_time(self, key: str, state: dict[str, Any], until: int) -> list[Match]:
        matches: list[Match] = []
        while "bucket" in state and state["bucket"] + self.pattern.bucket_ms - 1 < until:
            matches.extend(self._close_bucket(key, state))
        return matches

    def next_due(self, state: dict[str, Any]) -> int | None:
        return state["bucket"] + self.pattern.bucket_ms - 1 if "bucket" in state else None

    def is_empty(self, state: dict[str, Any]) -> bool:
        return "bucket" not in state

    def _close_bucket(self, key: str, state: dict[str, Any]) -> list[Match]:
        pattern = self.pattern
        count, start = state["count"], state["bucket"]
        verdict = self._zscore(state, count) if pattern.method == "zscore" \
            else self._ewma(state, count)
        matches = []
        if verdict is not None:
            matches.append(make_match(pattern, key, list(state["ids"]), start,
                                      start + pattern.bucket_ms - 1, {
                                          "method": pattern.method,
                                          "bucket_start": start,
                                          "bucket_end": start + pattern.bucket_ms,
                                          "count": count,
                                          "threshold": pattern.threshold,
                                          **verdict,
                                      }))
        state.update({"bucket": start + pattern.bucket_ms, "count": 0, "ids": []})
        state["idle"] = state["idle"] + 1 if count == 0 else 0
        if state["idle"] >= pattern.history_buckets:
            for name in ("bucket", "count", "ids", "history", "mean", "var", "seen", "idle"):
                del state[name]
        return matches

    def _zscore(self, state: dict[str, Any], count: int) -> dict[str, Any] | None:
        history: list[int] = state["history"]
        verdict = None
        n = len(history)
        if n >= self.pattern.required_history:
            total = sum(history)
            spread = n * sum(h * h for h in history) - total * total  # n² · variance
            if (n * count - total) ** 2 > self._threshold_squared * spread:
                std = math.sqrt(spread) / n
                verdict = {"mean": total / n, "std": std,
                           "z": (count - total / n) / std if std else None}
        history.append(count)
        del history[: -self.pattern.history_buckets]
        return verdict

    def _ewma(self, state: dict[str, Any], count: int) -> dict[str, Any] | None:
        alpha = self.pattern.alpha
        verdict = None
        if state["mean"] is None:
            state["mean"], state["var"] = float(count), 0.0
        else:
            deviation = count - state["mean"]
            if state["seen"] >= self.pattern.required_history and \
                    deviation * deviation > self.pattern.threshold ** 2 * state["var"]:
                verdict = {"mean": state["mean"], "std": math.sqrt(state["var"])}
            state["mean"] += alpha * deviation
            state["var"] = (1 - alpha) * (state["var"] + alpha * deviation * deviation)
        state["seen"] += 1
        return verdict
