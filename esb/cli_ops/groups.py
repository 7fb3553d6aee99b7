"""``esb groups list|lag``."""

from __future__ import annotations

import argparse
from typing import Any

from esb.cli_ops.common import OK, add_common, emit, subgroup, table, wrap
from esb.sdk import SyncEsbClient


def _list(args: argparse.Namespace, esb: SyncEsbClient) -> int:
    table(args, esb.list_consumer_groups(),
          ("group_name", "group_id", "partition_assignment_strategy"))
    return OK


def _lag(args: argparse.Namespace, esb: SyncEsbClient) -> int:
    lag = esb.consumer_lag(args.group)
    rows = [{"partition": p, "lag": n} for p, n in sorted(lag["partition_lags"].items(),
                                                           key=lambda kv: int(kv[0]))]
    if args.json:
        emit(args, lag)
    else:
        print(f"{lag['group_name']} ({lag['group_id']}): total lag {lag['total_lag']}, "
              f"{lag['active_consumers']} active consumers")
        table(args, rows, ("partition", "lag"))
    return OK


def register(subparsers: Any) -> None:
    sub = subgroup(subparsers, "groups", "consumer groups")
    p = sub.add_parser("list", help="the tenant's consumer groups")
    add_common(p)
    p.set_defaults(func=wrap(_list))
    p = sub.add_parser("lag", help="lag per partition")
    p.add_argument("group", help="group id or name")
    add_common(p)
    p.set_defaults(func=wrap(_lag))
