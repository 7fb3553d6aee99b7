"""Benchmarks behind ``esb bench``; each returns a JSON-able dict with its baseline and ratio."""

from __future__ import annotations

from typing import Any


def run(args: Any) -> dict[str, Any]:
    if args.kind == "pipeline":
        from esb.bench.pipeline import run_pipeline

        return run_pipeline(args)
    if args.kind == "publish":
        from esb.bench.publish import run_publish

        return run_publish(args)
    raise SystemExit(f"unknown benchmark {args.kind!r}")
