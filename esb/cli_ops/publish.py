"""``esb publish``: one event from flags or JSON, or NDJSON from a file or stdin.

A line with ``specversion`` is a structured CloudEvent, any other line a seed body. Every event
gets its id before it is sent, so a re-run after a failure part-way through can be made
idempotent by giving ids in the file.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from esb.cli_ops.common import CONFLICT, OK, USAGE, add_common, emit, wrap
from esb.sdk import SyncEsbClient


def _one(args: argparse.Namespace) -> dict[str, Any]:
    if args.event:
        event = json.loads(args.event)
    else:
        if not args.type:
            raise ValueError("give --type (and --data), an event as JSON, or --file")
        event = {"event_type": args.type, "source_capability": args.source,
                 "payload": json.loads(args.data) if args.data else {}}
    if args.stream:
        event.setdefault("stream" if "specversion" in event else "stream_id", args.stream)
    if args.priority and "specversion" not in event:
        event["priority"] = args.priority
    return event


def _send(esb: SyncEsbClient, event: dict[str, Any]) -> dict[str, Any]:
    if "specversion" in event:
        return esb.publish_cloudevent(event)
    return esb.publish(event)


def _lines(path: str) -> list[dict[str, Any]]:
    handle = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    try:
        return [json.loads(line) for line in handle if line.strip()]
    finally:
        if handle is not sys.stdin:
            handle.close()


def _publish(args: argparse.Namespace, esb: SyncEsbClient) -> int:
    try:
        events = _lines(args.file) if args.file else [_one(args)]
    except (ValueError, OSError) as exc:
        print(f"esb publish: {exc}", file=sys.stderr)
        return USAGE
    if args.stream and args.file:
        for event in events:
            event.setdefault("stream" if "specversion" in event else "stream_id", args.stream)
    results = []
    if len(events) > 1 and not args.json and sys.stderr.isatty():
        from rich.progress import track

        for event in track(events, description="publishing", console=None):
            results.append(_send(esb, event))
    else:
        results = [_send(esb, event) for event in events]
    if args.file:
        emit(args, {"published": len(results), "events": results},
             ("event_id", "stream_id", "partition", "offset"), None if args.json else results)
    else:
        emit(args, results[0])
    return OK if results else CONFLICT


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("publish", help="publish one event, or NDJSON from --file/-")
    p.add_argument("event", nargs="?", help="one event as JSON (seed body or CloudEvent)")
    p.add_argument("--type", help="event_type")
    p.add_argument("--source", default="esb-cli", help="source_capability")
    p.add_argument("--data", help="payload as JSON")
    p.add_argument("--stream", help="stream name or id")
    p.add_argument("--priority", choices=["CRITICAL", "HIGH", "NORMAL", "LOW"])
    p.add_argument("--file", help="NDJSON file, or - for stdin")
    add_common(p)
    p.set_defaults(func=wrap(_publish))
