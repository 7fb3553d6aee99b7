"""``esb bench all``: every benchmark in one run and one JSON document, with issue 15's goals.

Each kind runs with its own event count (``--events`` caps them all, for a quick pass), one
after the other, so that no two share the machine. A kind that fails is reported with its error
and the others still run: a long run must not be lost to one broken phase. ``goals`` puts the
headline figure of each path beside its target, measured against the baselines of the same run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable
from typing import Any

# the order keeps the cheap, telling ones first; counts are sized for ~20 minutes on 2 cores
EVENTS = {"idle": 0, "pipeline": 200_000, "publish": 20_000, "delivery": 5_000,
          "sourcing": 2_000, "processors": 100_000, "durable": 0}
#: arguments a kind runs with in ``all`` beyond the command line's
KIND_ARGS: dict[str, dict[str, Any]] = {"pipeline": {"workers": 2}}  # goal 7: scale-out


def _at(result: dict[str, Any], *path: str) -> Any:
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


# (kind, path into its result, goal, comparison) — issue 15's goals
GOALS: list[tuple[str, str, tuple[str, ...], float, str]] = [
    ("idle_cpu_percent_of_one_core", "idle", ("idle_cpu_percent",), 5.0, "<"),
    ("ingress_ratio_to_raw", "pipeline", ("ratio",), 0.7, ">="),
    ("ingress_ratio_to_raw_with_schema", "pipeline", ("ratio_with_validation",), 0.5, ">="),
    ("ingress_p95_ms_at_rate", "pipeline", ("end_to_end_latency_ms", "p95"), 50.0, "<"),
    ("http_single_ratio_to_bare_endpoint", "publish", ("ratio_single_to_bare_http",), 0.7, ">="),
    ("http_batch_ratio_to_bare_endpoint", "publish", ("ratio_batch_to_bare_http",), 0.7, ">="),
    ("appends_per_s_uncontended", "sourcing", ("uncontended", "appends_per_s"), 3000.0, ">="),
    ("append_p99_ms_uncontended", "sourcing", ("uncontended", "latency_ms", "p99"), 100.0, "<"),
    ("hot_aggregate_accepted_per_s", "sourcing", ("contended_one_aggregate", "accepted_per_s"),
     200.0, ">="),
    ("delivery_ratio_to_raw_posts", "delivery", ("ratio",), 0.5, ">="),
    ("publish_to_webhook_p95_ms", "delivery", ("publish_to_delivery_latency_ms", "p95"), 10.0,
     "<"),
    ("filter_ratio_to_raw", "processors", ("filter", "ratio_to_raw"), 0.5, ">="),
    ("aggregate_ratio_to_raw", "processors", ("aggregate", "ratio_to_raw"), 0.25, ">="),
    ("pattern_co_partitioned_ratio_to_raw", "processors",
     ("sequence_pattern_co_partitioned", "ratio_to_raw"), 0.4, ">="),
    ("pattern_rekeyed_ratio_to_raw", "processors", ("sequence_pattern", "ratio_to_raw"), 0.25,
     ">="),
    # issue 11: the durable default serves appends close to memory (ADR 0014)
    ("durable_append_p95_ratio_to_memory", "durable", ("up", "ratio_p95"), 3.0, "<"),
    # goal 7 names no number: 1.5 is ours (two routers, 6 partitions, on 2 cores with the broker)
    ("scale_out_ratio_to_one_worker", "pipeline", ("scale_out", "ratio_to_one_worker"), 1.5,
     ">="),
]

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda value, goal: value >= goal, "<": lambda value, goal: value < goal}


def goals(results: dict[str, Any]) -> dict[str, Any]:
    """Each goal with the measured value and whether it is met (None: not measured)."""
    out: dict[str, Any] = {}
    for name, kind, path, goal, op in GOALS:
        value = _at(results.get(kind) or {}, *path)
        met = None if not isinstance(value, int | float) else _COMPARE[op](value, goal)
        out[name] = {"value": value, "goal": f"{op} {goal:g}", "met": met}
    return out


def run_all(args: Any) -> dict[str, Any]:
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for kind, events in EVENTS.items():
        kind_args = argparse.Namespace(**{**vars(args), **KIND_ARGS.get(kind, {}), "kind": kind,
                                          "events": min(args.events, events) if events else 0})
        print(f"esb bench all: {kind}", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            module = importlib.import_module(f"esb.bench.{kind}")
            results[kind] = getattr(module, f"run_{kind}")(kind_args)
        except Exception as exc:  # one broken phase must not lose the others' figures
            results[kind] = {"error": f"{type(exc).__name__}: {exc}"}
        seconds[kind] = round(time.monotonic() - started, 1)
    return {"benchmark": "all", "goals": goals(results), "seconds": seconds, **results}
