"""``esb streams list|create|describe``."""

from __future__ import annotations

import argparse
from typing import Any

from esb.cli_ops.common import OK, add_common, emit, subgroup, table, wrap
from esb.sdk import SyncEsbClient


def _list(args: argparse.Namespace, esb: SyncEsbClient) -> int:
    table(args, esb.list_streams(), ("stream_name", "stream_id", "partitions",
                                     "source_capability", "event_types"))
    return OK


def _create(args: argparse.Namespace, esb: SyncEsbClient) -> int:
    body: dict[str, Any] = {"stream_name": args.name, "partitions": args.partitions}
    if args.source:
        body["source_capability"] = args.source
    if args.event_type:
        body["event_types"] = args.event_type
    created = esb.create_stream(body)
    emit(args, created if args.json else {"stream_id": created["stream_id"],
                                          "topics": created["stream"].get("topics")})
    return OK


def _describe(args: argparse.Namespace, esb: SyncEsbClient) -> int:
    emit(args, esb.get_stream(args.name))
    return OK


def register(subparsers: Any) -> None:
    sub = subgroup(subparsers, "streams", "list, create and describe streams")
    p = sub.add_parser("list", help="the tenant's streams")
    add_common(p)
    p.set_defaults(func=wrap(_list))
    p = sub.add_parser("create", help="create a stream (one topic per priority lane)")
    p.add_argument("name")
    p.add_argument("--source", help="source_capability routed here by default")
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument("--event-type", action="append", help="glob routed here (repeatable)")
    add_common(p)
    p.set_defaults(func=wrap(_create))
    p = sub.add_parser("describe", help="one stream by name or id")
    p.add_argument("name")
    add_common(p)
    p.set_defaults(func=wrap(_describe))
