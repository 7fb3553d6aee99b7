"""Long operations as jobs: a resource with status and progress instead of one long request.

A job record lives in the metadata catalog (kind ``job``, per tenant), so any replica answers
``GET /api/v1/jobs/{id}`` while the replica that accepted the job runs it and writes progress
(at most once a second, and at the end). Statuses: ``running``, then ``succeeded`` (each item
done or failed on its own, counted) or ``failed`` (the job itself stopped, e.g. storage down).
First user: bulk dead-letter redrive with ``Prefer: respond-async`` (ADR 0016).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from esb import ids
from esb.catalog import MetadataCatalog
from esb.errors import EsbError, NotFound

log = logging.getLogger(__name__)

KIND = "job"
#: how many item errors a job keeps (the rest are only counted)
MAX_ERRORS = 20
PROGRESS_EVERY_S = 1.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JobBook:
    """Creates, runs and reads jobs; records go through the catalog (read-your-writes)."""

    def __init__(self, catalog: MetadataCatalog) -> None:
        self.catalog = catalog
        self._tasks: set[asyncio.Task[dict[str, Any]]] = set()  # running here (kept alive)

    def get(self, tenant: str, job_id: str) -> dict[str, Any]:
        record = self.catalog.current.get(KIND, tenant, job_id)
        if record is None:
            raise NotFound(f"job {job_id!r} not found", job_id=job_id)
        return record

    async def create(self, tenant: str, kind: str, total: int, *, user: str,
                     request: dict[str, Any]) -> dict[str, Any]:
        record = {"job_id": ids.new_id("job").lower(), "tenant_id": tenant, "kind": kind,
                  "status": "running", "request": request, "created_by": user,
                  "created_at": _now(), "updated_at": _now(), "finished_at": None,
                  "progress": {"total": total, "done": 0, "failed": 0}, "errors": []}
        await self.catalog.write(KIND, tenant, record["job_id"], "put", record)
        return record

    def start(self, job: dict[str, Any], items: Sequence[str],
              step: Callable[[str], Awaitable[Any]]) -> None:
        """Run the job in the background of this replica (the request answers 202 at once)."""
        task = asyncio.ensure_future(self.run(job, items, step))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self, job: dict[str, Any], items: Sequence[str],
                  step: Callable[[str], Awaitable[Any]]) -> dict[str, Any]:
        """``step`` each item in order; an item that fails is counted with its error and the
        job goes on; anything else (an outage) fails the job."""
        job = dict(job)
        progress, errors = dict(job["progress"]), list(job["errors"])
        written = time.monotonic()
        try:
            for item in items:
                try:
                    await step(item)
                    progress["done"] += 1
                except EsbError as exc:
                    if exc.retriable:
                        raise
                    progress["failed"] += 1
                    if len(errors) < MAX_ERRORS:
                        errors.append({"item": item, "code": exc.code,
                                       "detail": exc.public_message})
                if time.monotonic() - written >= PROGRESS_EVERY_S:
                    await self._save(job, progress=dict(progress), errors=list(errors))
                    written = time.monotonic()
        except Exception as exc:  # the job stops; its record says so
            log.exception("job %s failed", job["job_id"])
            detail = exc.public_message if isinstance(exc, EsbError) else "internal error"
            return await self._save(job, status="failed", progress=progress, errors=errors,
                                    error=detail, finished_at=_now())
        return await self._save(job, status="succeeded", progress=progress, errors=errors,
                                finished_at=_now())

    async def _save(self, job: dict[str, Any], **changes: Any) -> dict[str, Any]:
        job.update(changes, updated_at=_now())
        await self.catalog.write(KIND, job["tenant_id"], job["job_id"], "put", dict(job))
        return job
