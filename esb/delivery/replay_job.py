"""A subscription replay as a job (ADR 0016): progress is the group's position against the
end offsets taken when the replay was requested.

The replay itself happens in the subscription's consumers: on their next assignment they seek
each partition to the requested offset and set a marker (``replay_marker``; Redis when
configured, else the worker's memory). The job watches: a partition counts once its marker is
set, by how far its committed offset has moved from the replay offset towards the end offset
taken at request time. The job succeeds when every partition reached that end; it fails with a
reason when the subscription goes away or stops being active, when a newer replay replaces it,
or when nothing moves for ``stall_s`` (no consumer of the subscription is running). Watching is
idempotent, so the job resumes on another replica from its record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from esb.delivery.lag import OffsetReader
from esb.delivery.models import SubscriptionState
from esb.delivery.service import SubscriptionService
from esb.errors import NotFound
from esb.jobs import JobFailed, Progress, Resumer, Work

KIND = "subscription_replay"
POLL_S = 1.0
STALL_S = 600.0

Applied = Callable[[str], Awaitable[bool]]


def replay_marker(prefix: str, subscription_id: str, replay_id: str, partition: str) -> str:
    """The key a consumer sets once it sought ``partition`` ("topic:n") for this replay (the
    delivery agent writes it, the job reads it)."""
    return f"{prefix}:replay:{subscription_id}:{replay_id}:{partition}"


def replay_total(starts: Mapping[str, int], ends: Mapping[str, int]) -> int:
    """Records to redeliver: from each replay offset to the end taken at request time."""
    return sum(max(0, int(ends.get(name, start)) - int(start)) for name, start in starts.items())


def replay_done(starts: Mapping[str, int], ends: Mapping[str, int],
                committed: Mapping[str, int | None], applied: set[str]) -> int:
    """Records redelivered so far (pure): only partitions whose seek happened count."""
    done = 0
    for name, start in starts.items():
        want = max(0, int(ends.get(name, start)) - int(start))
        if want == 0 or name not in applied:
            continue
        position = committed.get(name)
        done += min(want, max(0, int(position if position is not None else start) - int(start)))
    return done


def replay_work(job: dict[str, Any], *, subscriptions: SubscriptionService,
                offsets: OffsetReader, applied: Applied, prefix: str,
                poll_s: float = POLL_S, stall_s: float = STALL_S) -> Work:
    """The watch of one replay job, built from its record alone."""
    tenant = job["tenant_id"]
    request = job["request"]
    sub_id, replay_id = request["subscription_id"], request["replay_id"]
    starts: dict[str, int] = {k: int(v) for k, v in request["offsets"].items()}
    ends: dict[str, int] = {k: int(v) for k, v in request["ends"].items()}
    total = replay_total(starts, ends)
    pending = {n for n, s in starts.items() if ends.get(n, s) > s}

    async def work(progress: Progress) -> dict[str, Any]:
        seen: set[str] = set()
        last, moved = -1, time.monotonic()
        while True:
            try:
                sub = subscriptions.get(tenant, sub_id)
            except NotFound:
                raise JobFailed("the subscription was deleted during the replay") from None
            if sub.get("status") != SubscriptionState.ACTIVE:
                raise JobFailed(f"the subscription is {sub.get('status')}; the replay stopped")
            current = (sub.get("replay") or {}).get("replay_id")
            if current != replay_id:
                raise JobFailed(f"replaced by a newer replay ({current})")
            for name in pending - seen:
                if await applied(replay_marker(prefix, sub_id, replay_id, name)):
                    seen.add(name)
            committed: dict[str, int | None] = {}
            if seen:
                rows = await offsets.group_lag(sub["kafka_group_id"],
                                               list(sub["topics"].values()),
                                               sub.get("start_offsets"))
                committed = {f"{r.topic}:{r.partition}": r.committed for r in rows}
            done = replay_done(starts, ends, committed, seen)
            await progress.update(done=done, total=total)
            if done >= total:
                return {"subscription_id": sub_id, "replay_id": replay_id, "replayed": done}
            if done != last:
                last, moved = done, time.monotonic()
            elif time.monotonic() - moved >= stall_s:
                raise JobFailed(f"no progress for {stall_s:.0f} s: is a consumer of the "
                                "subscription running?")
            await asyncio.sleep(poll_s)

    return work


def replay_resumer(subscriptions: SubscriptionService, offsets: OffsetReader,
                   applied: Applied, prefix: str) -> Resumer:
    """What ``JobBook.resumable`` needs for replay jobs: the watch from a record."""
    return lambda job: replay_work(job, subscriptions=subscriptions, offsets=offsets,
                                   applied=applied, prefix=prefix)
