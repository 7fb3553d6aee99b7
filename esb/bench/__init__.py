"""Benchmarks behind ``esb bench``; each returns a JSON-able dict with its baseline and ratio.

Each kind lives in ``esb/bench/<kind>.py`` with ``run_<kind>(args) -> dict``.
"""

from __future__ import annotations

import importlib
from typing import Any

KINDS = ("pipeline", "publish", "sourcing", "delivery", "processors", "idle", "durable", "soak",
         "all")


def run(args: Any) -> dict[str, Any]:
    if args.kind not in KINDS:
        raise SystemExit(f"unknown benchmark {args.kind!r}")
    module = importlib.import_module(f"esb.bench.{args.kind}")
    result: dict[str, Any] = getattr(module, f"run_{args.kind}")(args)
    return result
