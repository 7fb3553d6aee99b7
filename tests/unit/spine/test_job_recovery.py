"""Jobs outlive the replica that ran them (ADR 0016): the recovery decision as a pure unit, and
the book taking over running jobs whose runner is gone (resumed when their kind can be, else
failed with a reason); and the replay job's progress arithmetic."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from esb.delivery.replay_job import replay_done, replay_total
from esb.jobs import JobBook, Progress, recovery_action
from tests.unit.spine.test_quotas import FakeCatalog

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def _job(**fields: Any) -> dict[str, Any]:
    return {"status": "running", "updated_at": NOW.isoformat().replace("+00:00", "Z"),
            "runner": {"replica": "host-a:8080", "incarnation": "old"}, **fields}


def _decide(job: dict[str, Any], now: datetime = NOW) -> str:
    return recovery_action(job, replica="host-a:8080", incarnation="new", now=now,
                           stale_after_s=60)


def test_the_recovery_decision() -> None:
    # this replica restarted: the previous incarnation's job is taken at once
    assert _decide(_job()) == "take"
    # running here now, or already finished: left alone
    assert _decide(_job(runner={"replica": "host-a:8080", "incarnation": "new"})) == "leave"
    assert _decide(_job(status="succeeded")) == "leave"
    assert _decide(_job(status="failed")) == "leave"
    # another replica's job: only once its heartbeat is stale
    other = _job(runner={"replica": "host-b:8080", "incarnation": "x"})
    assert _decide(other) == "leave"
    assert _decide(other, NOW + timedelta(seconds=59)) == "leave"
    assert _decide(other, NOW + timedelta(seconds=61)) == "take"
    # a record without a runner (written before runners were recorded) or a broken time
    assert _decide({"status": "running", "updated_at": "garbage"}) == "take"


async def _settle(book: JobBook) -> None:
    for _ in range(50):
        if not book._tasks:
            return
        await asyncio.sleep(0.01)


async def test_a_restarted_replica_resumes_what_it_can_and_fails_the_rest() -> None:
    catalog = FakeCatalog()
    before = JobBook(catalog, replica="host-a:8080")  # type: ignore[arg-type]
    resumable = await before.create("acme", "rebuild", 0, user="op", request={"n": 3})
    other = await before.create("acme", "dead_letter_redrive", 5, user="op", request={})
    foreign = JobBook(catalog, replica="host-b:8080")  # type: ignore[arg-type]
    alive = await foreign.create("acme", "rebuild", 0, user="op", request={"n": 1})
    # ... and host-a dies with both of its jobs running; it starts again
    after = JobBook(catalog, replica="host-a:8080")  # type: ignore[arg-type]
    runs: list[int] = []

    def resume(job: dict[str, Any]) -> Any:
        async def work(progress: Progress) -> dict[str, Any]:
            runs.append(job["request"]["n"])
            await progress.update(total=job["request"]["n"], done=job["request"]["n"])
            return {"ok": True}
        return work

    after.resumable("rebuild", resume)
    taken = await after.recover()
    assert {j["job_id"] for j in taken} == {resumable["job_id"], other["job_id"]}
    await _settle(after)
    assert runs == [3]  # host-b's job is alive: not touched
    done = after.get("acme", resumable["job_id"])
    assert done["status"] == "succeeded" and done["attempts"] == 2 and done["resumed_at"]
    assert done["progress"]["done"] == 3 and done["result"] == {"ok": True}
    assert done["runner"]["incarnation"] == after.incarnation
    failed = after.get("acme", other["job_id"])
    assert failed["status"] == "failed" and failed["finished_at"]
    assert "host-a:8080" in failed["error"] and "not resumed" in failed["error"]
    assert after.get("acme", alive["job_id"])["status"] == "running"
    assert await after.recover() == []  # nothing left to take


async def test_a_job_is_not_resumed_forever() -> None:
    catalog = FakeCatalog()
    book = JobBook(catalog, replica="r:1")  # type: ignore[arg-type]
    job = await book.create("acme", "rebuild", 0, user="op", request={})
    await catalog.write("job", "acme", job["job_id"], "put", {**job, "attempts": 3})
    book.resumable("rebuild", lambda j: None)
    restarted = JobBook(catalog, replica="r:1")  # type: ignore[arg-type]
    restarted.resumable("rebuild", lambda j: None)
    [record] = await restarted.recover()
    assert record["status"] == "failed" and "gave up after 3 attempts" in record["error"]


def test_replay_progress_counts_only_partitions_that_sought() -> None:
    starts = {"t:0": 2, "t:1": 0, "t:2": 9}
    ends = {"t:0": 10, "t:1": 4, "t:2": 9}  # t:2: nothing to replay
    assert replay_total(starts, ends) == 8 + 4
    committed = {"t:0": 10, "t:1": 20, "t:2": 9}
    assert replay_done(starts, ends, committed, set()) == 0  # positions before the seek
    assert replay_done(starts, ends, committed, {"t:0"}) == 8
    assert replay_done(starts, ends, {"t:0": 5, "t:1": None}, {"t:0", "t:1"}) == 3
    assert replay_done(starts, ends, committed, {"t:0", "t:1"}) == 12  # capped at each end
