"""What every operator command shares: the client, output (table or ``--json``), exit codes.

Exit codes scripts can rely on: 0 ok, 1 usage, 2 auth (401/403), 3 not found, 4 conflict or
validation (400/409/413/422), 5 unavailable (429/503, no answer).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from esb.sdk import SyncEsbClient, errors

OK, USAGE, AUTH, NOT_FOUND, CONFLICT, UNAVAILABLE = 0, 1, 2, 3, 4, 5

Command = Callable[[argparse.Namespace, SyncEsbClient], int]


class UsageError(Exception):
    """A bad argument or input file found by a command: message on stderr, exit 1."""


def exit_code(exc: errors.EsbApiError) -> int:
    if isinstance(exc, errors.Unauthenticated | errors.Forbidden):
        return AUTH
    if isinstance(exc, errors.NotFound):
        return NOT_FOUND
    if isinstance(exc, errors.RateLimited | errors.Unavailable):
        return UNAVAILABLE
    if isinstance(exc, errors.InvalidRequest | errors.Conflict | errors.ValidationFailed
                  | errors.PayloadTooLarge):
        return CONFLICT
    return UNAVAILABLE if exc.status >= 500 else CONFLICT


def message(exc: errors.EsbApiError) -> str:
    """One clear line (plus the field errors of a 422) for a human on stderr."""
    hint = {2: " (check ESB_TOKEN: missing, expired, or lacking the role)",
            5: " (is the bus at ESB_URL up?)"}.get(exit_code(exc), "")
    lines = [f"esb: {exc}{hint}"]
    if isinstance(exc, errors.ValidationFailed):
        lines += [f"  {e.get('path', '')}: {e.get('message', '')}" for e in exc.errors]
    return "\n".join(lines)


def wrap(command: Command) -> Callable[[argparse.Namespace], int]:
    """Run ``command`` with a client built from ``--url``/``--token`` or the environment."""

    def run(args: argparse.Namespace) -> int:
        client = SyncEsbClient(args.url, args.token)
        try:
            return command(args, client)
        except UsageError as exc:
            print(f"esb: {exc}", file=sys.stderr)
            return USAGE
        except errors.EsbApiError as exc:
            print(message(exc), file=sys.stderr)
            return exit_code(exc)
        finally:
            client.close()

    return run


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help="bus URL (default $ESB_URL)")
    parser.add_argument("--token", default=None, help="bearer token (default $ESB_TOKEN)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    _usage_exits_1(parser)


def _usage_exits_1(parser: argparse.ArgumentParser) -> None:
    """argparse exits 2 on usage errors; here 2 means auth, so usage is 1."""

    def error(msg: str) -> Any:
        parser.print_usage(sys.stderr)
        parser.exit(USAGE, f"{parser.prog}: error: {msg}\n")

    parser.error = error  # type: ignore[method-assign]


def command(subparsers: Any, name: str, func: Command, help_text: str, *positionals: str
            ) -> argparse.ArgumentParser:
    """One command: its positional arguments (``"name"`` or ``"name:help"``), the common
    options and the wrapped function; the caller adds its own options to the parser."""
    parser = subparsers.add_parser(name, help=help_text)
    for positional in positionals:
        arg, _, arg_help = positional.partition(":")
        parser.add_argument(arg, help=arg_help or None)
    add_common(parser)
    parser.set_defaults(func=wrap(func))
    return parser


def subgroup(subparsers: Any, name: str, help_text: str) -> Any:
    group = subparsers.add_parser(name, help=help_text)
    _usage_exits_1(group)
    return group.add_subparsers(dest=f"{name}_command", required=True)


def emit(args: argparse.Namespace, data: Any, columns: Sequence[str] = (),
         rows: Iterable[dict[str, Any]] | None = None) -> None:
    """``--json``: the API's answer as is; else a table of ``columns`` (or key: value lines)."""
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    # piped output is not cut to 80 columns: ids must survive `| grep` and `| awk`
    console = Console() if sys.stdout.isatty() else Console(width=1000)
    if rows is None:
        for key, value in (data.items() if isinstance(data, dict) else []):
            shown = json.dumps(value, default=str) if isinstance(value, dict | list) else value
            console.print(f"[bold]{key}[/bold]: {shown}", highlight=False, soft_wrap=True)
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    console.print(table)


def table(args: argparse.Namespace, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """A list the API answered: a table of ``columns``, or the list itself with ``--json``."""
    emit(args, rows, columns, rows)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)
