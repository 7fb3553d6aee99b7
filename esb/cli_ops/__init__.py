"""Operator commands of the ``esb`` CLI, built on the SDK (one module per command group)."""

from __future__ import annotations

from typing import Any

from esb.cli_ops import audit, dlq, groups, publish, schemas, streams, subscriptions, tail


def register(subparsers: Any) -> None:
    for module in (streams, publish, tail, groups, dlq, schemas, subscriptions, audit):
        module.register(subparsers)
