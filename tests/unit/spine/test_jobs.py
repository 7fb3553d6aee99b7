"""Jobs as a pure unit (ADR 0016): an item that fails on its own is counted and the job goes
on; an outage fails the job, which says so; every state is readable through the catalog."""

from __future__ import annotations

import pytest

from esb.errors import NotFound, StorageUnavailable, ValidationFailed
from esb.jobs import JobBook
from tests.unit.spine.test_quotas import FakeCatalog


async def test_items_that_fail_alone_are_counted_and_the_job_goes_on() -> None:
    jobs = JobBook(FakeCatalog())  # type: ignore[arg-type]
    job = await jobs.create("acme", "demo", 4, user="op", request={})
    assert jobs.get("acme", job["job_id"])["status"] == "running"
    seen: list[str] = []

    async def step(item: str) -> None:
        if item == "b":
            raise ValidationFailed("bad item b")
        seen.append(item)

    done = await jobs.run(job, ["a", "b", "c", "d"], step)
    assert seen == ["a", "c", "d"]
    stored = jobs.get("acme", job["job_id"])
    assert stored == done and stored["status"] == "succeeded" and stored["finished_at"]
    assert stored["progress"] == {"total": 4, "done": 3, "failed": 1}
    assert stored["errors"] == [{"item": "b", "code": "validation_failed",
                                 "detail": "bad item b"}]
    with pytest.raises(NotFound):
        jobs.get("other", job["job_id"])  # tenant-scoped


async def test_an_outage_fails_the_job_and_keeps_its_progress() -> None:
    jobs = JobBook(FakeCatalog())  # type: ignore[arg-type]
    job = await jobs.create("acme", "demo", 3, user="op", request={})

    async def step(item: str) -> None:
        if item == "b":
            raise StorageUnavailable("postgres down at host:5432")

    done = await jobs.run(job, ["a", "b", "c"], step)
    assert done["status"] == "failed" and done["progress"]["done"] == 1
    assert "host" not in done["error"]  # a driver's text never reaches the job record
