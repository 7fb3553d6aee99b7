"""``esb dlq list|show|redrive``."""

from __future__ import annotations

import argparse
import itertools
from typing import Any

from esb.cli_ops.common import OK, USAGE, add_common, emit, subgroup, table, wrap
from esb.sdk import SyncEsbClient

FILTERS = ("reason", "stage", "event_type", "stream")


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {f: getattr(args, f) for f in FILTERS if getattr(args, f, None)}


def _list(args: argparse.Namespace, esb: SyncEsbClient) -> int:
    items = list(itertools.islice(esb.dead_letters(page_size=min(args.limit, 1000),
                                                   **_filters(args)), args.limit))
    table(args, items, ("dlq_id", "reason", "stage", "event_type", "stream", "last_failure_at"))
    return OK


def _show(args: argparse.Namespace, esb: SyncEsbClient) -> int:
    emit(args, esb.get_dead_letter(args.dlq_id))
    return OK


def _redrive(args: argparse.Namespace, esb: SyncEsbClient) -> int:
    if bool(args.dlq_id) == bool(args.all):
        print("esb dlq redrive: give one DLQ_ID, or --all with filters", flush=True)
        return USAGE
    if args.dlq_id:
        emit(args, esb.redrive_dead_letter(args.dlq_id))
    else:
        result = esb.redrive_dead_letters(**_filters(args), limit=args.limit)
        emit(args, result if args.json else {"redriven": result["redriven"]})
    return OK


def _add_filters(p: argparse.ArgumentParser, limit: int) -> None:
    for name in FILTERS:
        p.add_argument(f"--{name.replace('_', '-')}", dest=name)
    p.add_argument("--limit", type=int, default=limit)


def register(subparsers: Any) -> None:
    sub = subgroup(subparsers, "dlq", "dead letters")
    p = sub.add_parser("list", help="dead letters, newest first")
    _add_filters(p, 100)
    add_common(p)
    p.set_defaults(func=wrap(_list))
    p = sub.add_parser("show", help="one dead letter, with its record")
    p.add_argument("dlq_id")
    add_common(p)
    p.set_defaults(func=wrap(_show))
    p = sub.add_parser("redrive", help="redrive one, or --all matching filters")
    p.add_argument("dlq_id", nargs="?")
    p.add_argument("--all", action="store_true")
    _add_filters(p, 1000)
    add_common(p)
    p.set_defaults(func=wrap(_redrive))
