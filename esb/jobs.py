"""Long operations as jobs: a resource with status and progress instead of one long request.

A job record lives in the metadata catalog (kind ``job``, per tenant), so any replica answers
``GET /api/v1/jobs/{id}`` while the replica that accepted the job runs it and writes progress
(at most once a second, at the end, and a heartbeat every ``heartbeat_s`` while it runs).
Statuses: ``running``, then ``succeeded`` (each item done or failed on its own, counted) or
``failed`` (the job itself stopped, with ``error`` saying why). Kinds: bulk dead-letter redrive,
subscription replay, read-model rebuild and replay (ADR 0016).

A job's runner can die with its replica. Each record names its runner (a stable replica name
and the process incarnation); :class:`JobRecovery` looks at running jobs when the worker
starts and then periodically, and takes over those whose runner is gone: a restarted replica
(same name, another incarnation) at once, any other replica's once its heartbeat is
``stale_after_s`` old. A kind registered with :meth:`JobBook.resumable` is run again from its
record (its work is idempotent); any other kind is marked ``failed`` with the reason.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from mode import Service

from esb import ids
from esb.catalog import MetadataCatalog
from esb.errors import EsbError, NotFound

log = logging.getLogger(__name__)

KIND = "job"
#: how many item errors a job keeps (the rest are only counted)
MAX_ERRORS = 20
PROGRESS_EVERY_S = 1.0
#: how often a running job's record is rewritten even without progress (its runner is alive)
HEARTBEAT_S = 10.0
#: a job whose record did not move for this long has lost its runner
STALE_AFTER_S = 60.0
#: a resumable job is started at most this many times in all
MAX_ATTEMPTS = 3


class JobFailed(EsbError):
    """The job cannot finish; ``message`` is the reason shown in the job record."""

    code = "job_failed"
    http_status = 409


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _age_s(stamp: str | None, now: datetime) -> float:
    if not stamp:
        return float("inf")
    try:
        return (now - datetime.fromisoformat(stamp.replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return float("inf")


def default_replica_name(port: int | None = None) -> str:
    """Stable across restarts of one replica: the host name and the web port."""
    name = socket.gethostname()
    return f"{name}:{port}" if port is not None else name


class Progress:
    """What a job's work reports while it runs; written to the record at most once a second."""

    def __init__(self, book: JobBook, job: dict[str, Any]) -> None:
        self.book = book
        self.job = job
        self._lock = asyncio.Lock()
        self._written = time.monotonic()
        self._saved = dict(job["progress"])  # the counts the record holds

    @property
    def counts(self) -> dict[str, int]:
        return self.job["progress"]  # type: ignore[no-any-return]

    async def update(self, *, done: int | None = None, total: int | None = None,
                     failed: int | None = None, advance: int = 0) -> None:
        counts = dict(self.counts)
        for key, value in (("done", done), ("total", total), ("failed", failed)):
            if value is not None:
                counts[key] = int(value)
        counts["done"] += advance
        self.job["progress"] = counts
        if counts != self._saved and time.monotonic() - self._written >= PROGRESS_EVERY_S:
            await self.save()  # unchanged progress waits for the heartbeat

    async def save(self, **changes: Any) -> dict[str, Any]:
        async with self._lock:
            self._written = time.monotonic()
            self.job.update(changes, updated_at=_now())
            self._saved = dict(self.job["progress"])
            record = copy.deepcopy(self.job)  # the catalog keeps what it was given
            await self.book.catalog.write(KIND, self.job["tenant_id"], self.job["job_id"], "put",
                                          record)
            return copy.deepcopy(record)


#: a job's work: reports through ``Progress``; returns a result for the record (or None)
Work = Callable[[Progress], Awaitable[dict[str, Any] | None]]
#: rebuilds a job's work from its record (a resumable kind); None: cannot be resumed
Resumer = Callable[[dict[str, Any]], Work | None]
Action = Literal["leave", "take"]


def recovery_action(job: dict[str, Any], *, replica: str, incarnation: str, now: datetime,
                    stale_after_s: float = STALE_AFTER_S) -> Action:
    """Whether this replica must take over ``job`` (pure: the recovery decision)."""
    if job.get("status") != "running":
        return "leave"
    runner = job.get("runner") or {}
    if runner.get("incarnation") == incarnation:
        return "leave"  # running here, now
    if runner.get("replica") == replica:
        return "take"  # this replica restarted: the previous process ran it and is gone
    return "take" if _age_s(job.get("updated_at"), now) >= stale_after_s else "leave"


class JobBook:
    """Creates, runs, reads and recovers jobs; records go through the catalog."""

    def __init__(self, catalog: MetadataCatalog, *, replica: str | None = None,
                 heartbeat_s: float = HEARTBEAT_S, stale_after_s: float = STALE_AFTER_S) -> None:
        self.catalog = catalog
        self.replica = replica or default_replica_name()
        self.incarnation = uuid.uuid4().hex[:12]
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self._tasks: dict[str, asyncio.Task[dict[str, Any]]] = {}  # running here, by job id
        self._resumers: dict[str, Resumer] = {}

    # --- reading ------------------------------------------------------------------------
    def get(self, tenant: str, job_id: str) -> dict[str, Any]:
        record = self.catalog.current.get(KIND, tenant, job_id)
        if record is None:
            raise NotFound(f"job {job_id!r} not found", job_id=job_id)
        return record

    # --- creating and running -----------------------------------------------------------
    def _runner(self) -> dict[str, str]:
        return {"replica": self.replica, "incarnation": self.incarnation}

    async def create(self, tenant: str, kind: str, total: int, *, user: str,
                     request: dict[str, Any]) -> dict[str, Any]:
        record = {"job_id": ids.new_id("job").lower(), "tenant_id": tenant, "kind": kind,
                  "status": "running", "request": request, "created_by": user,
                  "created_at": _now(), "updated_at": _now(), "finished_at": None,
                  "progress": {"total": total, "done": 0, "failed": 0}, "errors": [],
                  "runner": self._runner(), "attempts": 1}
        await self.catalog.write(KIND, tenant, record["job_id"], "put", record)
        return record

    def resumable(self, kind: str, resume: Resumer) -> None:
        """Declare that jobs of ``kind`` can be run again from their record after their
        runner died (their work must tolerate a repeat)."""
        self._resumers[kind] = resume

    def launch(self, job: dict[str, Any]) -> None:
        """Start a job of a registered kind (:meth:`resumable`) in the background here."""
        work = self._resumers[job["kind"]](job)
        if work is None:
            raise JobFailed(f"{job['kind']} job cannot run from its record")
        self.start_work(job, work)

    def start(self, job: dict[str, Any], items: Sequence[str],
              step: Callable[[str], Awaitable[Any]]) -> None:
        """Run an item-by-item job in the background of this replica (the request answers
        202 at once)."""
        self._spawn(job, self.run(job, items, step))

    def start_work(self, job: dict[str, Any], work: Work) -> None:
        """Run ``work`` as ``job`` in the background of this replica."""
        self._spawn(job, self.execute(job, work))

    def _spawn(self, job: dict[str, Any],
               coro: Awaitable[dict[str, Any]]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks[job["job_id"]] = task
        task.add_done_callback(lambda _t: self._tasks.pop(job["job_id"], None))

    async def run(self, job: dict[str, Any], items: Sequence[str],
                  step: Callable[[str], Awaitable[Any]]) -> dict[str, Any]:
        """``step`` each item in order; an item that fails is counted with its error and the
        job goes on; anything else (an outage) fails the job."""
        async def work(progress: Progress) -> None:
            errors = progress.job["errors"] = list(progress.job["errors"])
            for item in items:
                try:
                    await step(item)
                except EsbError as exc:
                    if exc.retriable:
                        raise
                    if len(errors) < MAX_ERRORS:
                        errors.append({"item": item, "code": exc.code,
                                       "detail": exc.public_message})
                    await progress.update(failed=progress.counts["failed"] + 1)
                    continue
                await progress.update(advance=1)
        return await self.execute(job, work)

    async def execute(self, job: dict[str, Any], work: Work) -> dict[str, Any]:
        """Run ``work`` to the end, keeping the record's heartbeat; the final record."""
        progress = Progress(self, dict(job))
        beat = asyncio.ensure_future(self._heartbeat(progress))
        try:
            result = await work(progress)
        except asyncio.CancelledError:
            raise  # the replica is stopping: recovery decides what happens to the job
        except Exception as exc:  # the job stops; its record says so
            if isinstance(exc, JobFailed):
                log.warning("job %s failed: %s", job["job_id"], exc.message)
            else:
                log.exception("job %s failed", job["job_id"])
            detail = exc.public_message if isinstance(exc, EsbError) else "internal error"
            return await progress.save(status="failed", error=detail, finished_at=_now())
        finally:
            beat.cancel()
        extra = {"result": result} if result is not None else {}
        return await progress.save(status="succeeded", finished_at=_now(), **extra)

    async def _heartbeat(self, progress: Progress) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await progress.save()
            except EsbError as exc:  # the catalog is down: the next beat tries again
                log.warning("job %s heartbeat not written: %s", progress.job["job_id"],
                            exc.code)

    # --- recovery -----------------------------------------------------------------------
    async def recover(self) -> list[dict[str, Any]]:
        """Take over every running job whose runner is gone; the records as rewritten."""
        now = datetime.now(UTC)
        taken = []
        for job in self.catalog.current.list(KIND):
            if job["job_id"] in self._tasks:
                continue
            if recovery_action(job, replica=self.replica, incarnation=self.incarnation,
                               now=now, stale_after_s=self.stale_after_s) == "take":
                taken.append(await self._take_over(job))
        return taken

    async def _take_over(self, job: dict[str, Any]) -> dict[str, Any]:
        runner = job.get("runner") or {}
        lost = f"its runner ({runner.get('replica', 'unknown replica')}) stopped"
        resume = self._resumers.get(job["kind"])
        attempts = int(job.get("attempts", 1))
        try:
            work = resume(job) if resume is not None and attempts < MAX_ATTEMPTS else None
        except Exception:  # a record it cannot read: failed, below
            log.exception("job %s cannot be resumed from its record", job["job_id"])
            work = None
        if work is None:
            reason = (f"{lost}; {job['kind']} jobs are not resumed: start it again"
                      if resume is None else
                      f"{lost}; gave up after {attempts} attempts" if attempts >= MAX_ATTEMPTS
                      else f"{lost}; it cannot be resumed from its record")
            log.warning("job %s marked failed: %s", job["job_id"], reason)
            record = {**job, "status": "failed", "error": reason, "finished_at": _now(),
                      "updated_at": _now()}
            await self.catalog.write(KIND, job["tenant_id"], job["job_id"], "put", record)
            return record
        log.info("job %s resumed here (%s)", job["job_id"], lost)
        record = {**job, "runner": self._runner(), "attempts": attempts + 1,
                  "resumed_at": _now(), "updated_at": _now()}
        await self.catalog.write(KIND, job["tenant_id"], job["job_id"], "put", record)
        self.start_work(record, work)
        return record


class JobRecovery(Service):
    """Runs :meth:`JobBook.recover` when the worker starts, then every half stale period."""

    def __init__(self, book: JobBook, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.book = book

    @Service.task
    async def _sweep(self) -> None:
        while not self.should_stop:
            try:
                await self.book.recover()
            except EsbError as exc:
                log.warning("job recovery skipped this round: %s", exc.code)
            except Exception:  # never stop the worker over a job record
                log.exception("job recovery failed this round")
            await self.sleep(max(1.0, self.book.stale_after_s / 2))
