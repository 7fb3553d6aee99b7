"""``esb tail STREAM [--type GLOB]``: live events over WebSocket, one JSON line each."""

from __future__ import annotations

import argparse
import json
from typing import Any

from esb.cli_ops.common import OK, add_common, wrap
from esb.sdk import SyncEsbClient


def _tail(args: argparse.Namespace, esb: SyncEsbClient) -> int:
    for item in esb.tail(args.stream, args.type, limit=args.limit, timeout_s=args.timeout):
        event = item["event"]
        if args.json:
            print(json.dumps(item), flush=True)
        else:
            print(f"{event.get('time', '')} {event['type']} {event['id']} "
                  f"p{item['partition']}@{item['offset']} {json.dumps(event.get('data'))}",
                  flush=True)
    return OK


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("tail", help="follow a stream's events live")
    p.add_argument("stream")
    p.add_argument("--type", default="*", help="event type glob, e.g. 'user.*'")
    p.add_argument("--limit", type=int, help="stop after N events")
    p.add_argument("--timeout", type=float, help="stop after this many idle seconds")
    add_common(p)
    p.set_defaults(func=wrap(_tail))
