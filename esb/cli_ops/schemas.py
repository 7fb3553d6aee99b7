"""``esb schemas list|register``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from esb.cli_ops.common import OK, USAGE, add_common, emit, subgroup, wrap
from esb.sdk import SyncEsbClient


def _list(args: argparse.Namespace, esb: SyncEsbClient) -> int:
    schemas = esb.list_schemas(event_type=args.event_type)
    emit(args, schemas, ("schema_id", "schema_name", "event_type", "schema_version"), schemas)
    return OK


def _register(args: argparse.Namespace, esb: SyncEsbClient) -> int:
    try:
        with open(args.file, encoding="utf-8") as handle:
            schema = json.load(handle)
    except (OSError, ValueError) as exc:
        print(f"esb schemas register: {exc}", file=sys.stderr)
        return USAGE
    emit(args, esb.register_schema(schema_name=args.name or args.event_type,
                                   event_type=args.event_type, json_schema=schema))
    return OK


def register(subparsers: Any) -> None:
    sub = subgroup(subparsers, "schemas", "the schema registry")
    p = sub.add_parser("list", help="registered schemas")
    p.add_argument("--event-type")
    add_common(p)
    p.set_defaults(func=wrap(_list))
    p = sub.add_parser("register", help="register a JSON Schema for an event type")
    p.add_argument("event_type")
    p.add_argument("file", help="JSON Schema file")
    p.add_argument("--name", help="schema_name (default: the event type)")
    add_common(p)
    p.set_defaults(func=wrap(_register))
