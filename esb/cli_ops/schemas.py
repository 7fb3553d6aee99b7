"""``esb schemas list|register|check``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from esb.cli_ops.common import CONFLICT, OK, UsageError, command, emit, subgroup, table
from esb.sdk import SyncEsbClient


def _list(args: argparse.Namespace, esb: SyncEsbClient) -> int:
    table(args, esb.list_schemas(event_type=args.event_type),
          ("schema_id", "schema_name", "event_type", "schema_version"))
    return OK


def _load(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: {exc}") from None


def _register(args: argparse.Namespace, esb: SyncEsbClient) -> int:
    emit(args, esb.register_schema(schema_name=args.name or args.event_type,
                                   event_type=args.event_type, json_schema=_load(args.file)))
    return OK


def _check(args: argparse.Namespace, esb: SyncEsbClient) -> int:
    """Exit 0 if the schema would be accepted as the next version, 4 if not (reasons shown)."""
    result = esb.check_compatibility(args.event_type, _load(args.file))
    ok = bool(result.get("is_compatible"))
    if args.json:
        emit(args, result)
    else:
        print(f"{args.event_type}: {'compatible' if ok else 'NOT compatible'}")
        for line in result.get("messages") or []:
            print(f"  {line}")
    return OK if ok else CONFLICT


def register(subparsers: Any) -> None:
    sub = subgroup(subparsers, "schemas", "the schema registry")
    command(sub, "list", _list, "registered schemas").add_argument("--event-type")
    command(sub, "register", _register, "register a JSON Schema for an event type",
            "event_type", "file:JSON Schema file").add_argument(
        "--name", help="schema_name (default: the event type)")
    command(sub, "check", _check, "is a JSON Schema compatible with the registered ones? "
            "(exit 0 yes, 4 no)", "event_type", "file:JSON Schema file")
