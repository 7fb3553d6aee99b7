"""``esb tail STREAM [--type GLOB] [--from-beginning]``: live events over WebSocket (after the
archived ones with ``--from-beginning``), one line each."""

from __future__ import annotations

import argparse
import json
from typing import Any

from esb.cli_ops.common import OK, add_common, wrap
from esb.sdk import SyncEsbClient


def _tail(args: argparse.Namespace, esb: SyncEsbClient) -> int:
    for item in esb.tail(args.stream, args.type, from_beginning=args.from_beginning,
                         limit=args.limit, timeout_s=args.timeout):
        event = item["event"]
        if args.json:
            print(json.dumps(item), flush=True)
        else:
            where = "archived" if item["partition"] is None else \
                f"p{item['partition']}@{item['offset']}"
            print(f"{event.get('time', '')} {event['type']} {event['id']} {where} "
                  f"{json.dumps(event.get('data'))}", flush=True)
    return OK


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("tail", help="follow a stream's events live")
    p.add_argument("stream")
    p.add_argument("--type", default="*", help="event type glob, e.g. 'user.*'")
    p.add_argument("--from-beginning", action="store_true",
                   help="the stream's archived events first, then live ones")
    p.add_argument("--limit", type=int, help="stop after N events")
    p.add_argument("--timeout", type=float, help="stop after this many idle seconds")
    add_common(p)
    p.set_defaults(func=wrap(_tail))
