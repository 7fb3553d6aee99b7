"""``esb subscriptions list|create|status|delete`` and ``esb replay``."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from esb.cli_ops.common import OK, UNAVAILABLE, USAGE, command, emit, subgroup, table
from esb.sdk import SyncEsbClient

COLUMNS = ("subscription_id", "subscription_name", "stream_id", "consumer_group_id", "status",
           "delivery_mode")
STATUS_COLUMNS = ("status", "lag", "events_delivered", "events_failed", "events_dead_lettered",
                  "events_retrying", "circuit_state", "last_error")


def _list(args: argparse.Namespace, esb: SyncEsbClient) -> int:
    table(args, esb.list_subscriptions(args.status), COLUMNS)
    return OK


def _create(args: argparse.Namespace, esb: SyncEsbClient) -> int:
    body: dict[str, Any] = {"subscription_name": args.name, "stream_id": args.stream,
                            "consumer_group_id": args.group or f"{args.name}-group",
                            "event_type_patterns": args.type or ["*"]}
    if args.webhook:
        body["webhook_url"] = args.webhook
    if args.filter:
        body["filter_expression"] = args.filter
    created = esb.create_subscription(body)
    emit(args, created)  # shows the webhook secret: the only time the bus tells it
    return OK


def _status(args: argparse.Namespace, esb: SyncEsbClient) -> int:
    status = esb.subscription_status(args.subscription_id)
    if args.json:
        emit(args, status)
    else:
        print(f"{status['subscription_name']} ({status['subscription_id']}) on "
              f"{status['stream_id']}, group {status['consumer_group_id']}")
        table(args, [status], STATUS_COLUMNS)
    return OK


def _delete(args: argparse.Namespace, esb: SyncEsbClient) -> int:
    emit(args, esb.cancel_subscription(args.subscription_id))
    return OK


def _offsets(values: list[str] | None) -> int | dict[str, int] | None:
    """``--from-offset 5`` (every partition) or ``--from-offset 0=5 --from-offset 1=7``."""
    if not values:
        return None
    if len(values) == 1 and "=" not in values[0]:
        return int(values[0])
    pairs = [v.split("=", 1) for v in values]
    return {p.strip(): int(n) for p, n in pairs}


def _replay(args: argparse.Namespace, esb: SyncEsbClient) -> int:
    try:
        offsets = _offsets(args.from_offset)
    except ValueError:
        print("esb replay: --from-offset takes N or PARTITION=N", file=sys.stderr)
        return USAGE
    if (args.from_time is None) == (offsets is None):
        print("esb replay: give exactly one of --from-time or --from-offset", file=sys.stderr)
        return USAGE
    before = esb.subscription_status(args.subscription_id)
    answer = esb.replay_subscription(args.subscription_id, from_time=args.from_time,
                                     from_offset=offsets)
    if args.no_wait:
        emit(args, answer)
        return OK
    done = (_follow_job(args, esb, answer["job_id"]) if answer.get("job_id")
            else _follow(args, esb, before))  # a bus without replay jobs
    emit(args, {**answer, **done})
    return OK if done["caught_up"] else UNAVAILABLE


def _follow_job(args: argparse.Namespace, esb: SyncEsbClient, job_id: str) -> dict[str, Any]:
    """Until the replay job ends (the subscription redelivered up to the end offsets of the
    request), with a progress bar on a terminal."""
    from rich.console import Console
    from rich.progress import Progress

    deadline = time.monotonic() + args.timeout
    progress = Progress(console=Console(stderr=True), disable=args.json or not sys.stderr.isatty(),
                        transient=True)
    with progress:
        bar = progress.add_task("replaying", total=None)
        while True:
            job = esb.get_job(job_id)
            counts = job.get("progress") or {}
            progress.update(bar, completed=counts.get("done", 0), total=counts.get("total"))
            if job["status"] != "running" or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
    done = {"status": job["status"], "progress": counts,
            "caught_up": job["status"] == "succeeded", "replayed": counts.get("done", 0)}
    if job["status"] == "failed":
        print(f"esb replay: the replay failed: {job.get('error')}", file=sys.stderr)
        done["error"] = job.get("error")
    return done


def _handled(status: dict[str, Any]) -> int:
    return sum(int(status.get(k) or 0) for k in
               ("events_delivered", "events_dead_lettered", "events_filtered"))


def _follow(args: argparse.Namespace, esb: SyncEsbClient, before: dict[str, Any]
            ) -> dict[str, Any]:
    """Until the replayed events are handled (lag back to 0 after the seek), with a progress
    bar on a terminal. The seek happens when the subscription's consumers next rebalance
    (seconds), so a lag of 0 counts as done only once something was handled since the
    request, or when ``--settle`` seconds passed without anything to redeliver."""
    from rich.console import Console
    from rich.progress import Progress

    start, deadline = time.monotonic(), time.monotonic() + args.timeout
    base = _handled(before)
    progress = Progress(console=Console(stderr=True), disable=args.json or not sys.stderr.isatty(),
                        transient=True)
    with progress:
        bar = progress.add_task("replaying", total=None)
        while True:
            status = esb.subscription_status(args.subscription_id)
            handled, lag = _handled(status) - base, int(status.get("lag") or 0)
            progress.update(bar, completed=handled, total=handled + lag)
            settled = handled > 0 or time.monotonic() - start >= args.settle
            if lag == 0 and settled:
                return {"caught_up": True, "replayed": handled}
            if time.monotonic() >= deadline:
                return {"caught_up": False, "replayed": handled, "lag": lag}
            time.sleep(0.5)


def register(subparsers: Any) -> None:
    sub = subgroup(subparsers, "subscriptions", "subscriptions (webhook or WebSocket)")
    command(sub, "list", _list, "the tenant's subscriptions").add_argument(
        "--status", help="ACTIVE, PAUSED, CANCELLED …")
    p = command(sub, "create", _create, "subscribe to a stream", "name")
    p.add_argument("--stream", required=True, help="stream name or id")
    p.add_argument("--group", help="consumer group (default NAME-group)")
    p.add_argument("--type", action="append", help="event type glob (repeatable, default *)")
    p.add_argument("--webhook", help="webhook URL (else a WebSocket subscription)")
    p.add_argument("--filter", help="CEL filter expression")
    command(sub, "status", _status, "delivery counters, lag and circuit state",
            "subscription_id")
    command(sub, "delete", _delete, "cancel a subscription", "subscription_id")

    p = command(subparsers, "replay", _replay, "redeliver a subscription's events from a time "
                "or offsets, with progress", "subscription_id")
    p.add_argument("--from-time", help="RFC 3339 time, e.g. 2026-12-01T00:00:00Z")
    p.add_argument("--from-offset", action="append", metavar="N|PARTITION=N")
    p.add_argument("--no-wait", action="store_true", help="return once the replay is recorded")
    p.add_argument("--timeout", type=float, default=300.0, help="give up waiting (exit 5)")
    p.add_argument("--settle", type=float, default=30.0,
                   help="seconds after which a lag of 0 with nothing redelivered means done")
