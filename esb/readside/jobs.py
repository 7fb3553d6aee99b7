"""Read-model rebuild and replay as jobs (ADR 0016): progress counts archived events read.

The total is the number of archived events that feed the model (narrowed to one aggregate or
stream for a replay) when the job starts; ``done`` counts events read back and applied. A
rebuild replaces the documents in one transaction, a replay re-applies events (the same event
gives the same document), so both can run again from the record after their runner died.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from esb.db import Database
from esb.jobs import Progress, Work
from esb.readside.archive import EventArchive
from esb.readside.models import ArchivedEvent
from esb.readside.readmodels import ReadModelStore
from esb.readside.replay import archived_events, feed_query

REBUILD = "read_model_rebuild"
REPLAY = "read_model_replay"


def read_model_request(name: str, *, aggregate_id: str | None = None,
                       stream_id: str | None = None) -> dict[str, Any]:
    """What a job record keeps to run (or resume) the job."""
    request: dict[str, Any] = {"read_model": name}
    if aggregate_id is not None:
        request["aggregate_id"] = aggregate_id
    if stream_id is not None:
        request["stream_id"] = stream_id
    return request


def read_model_work(database: Database, job: dict[str, Any]) -> Work:
    """The rebuild (kind ``read_model_rebuild``) or replay of one model, from its record."""
    tenant, request = job["tenant_id"], job["request"]
    name = request["read_model"]

    async def work(progress: Progress) -> dict[str, Any]:
        store, archive = ReadModelStore(database), EventArchive(database)
        definition = await store.get_definition(tenant, name)
        query = feed_query(definition, aggregate_id=request.get("aggregate_id"),
                           stream_id=request.get("stream_id"))
        total = await archive.count(tenant, query)
        await progress.update(total=total, done=0)

        async def counted() -> AsyncIterator[ArchivedEvent]:
            async for event in archived_events(archive, tenant, query):
                yield event
                await progress.update(advance=1)

        if job["kind"] == REBUILD:
            changes = await store.rebuild(tenant, name, counted())
        else:
            changes = await store.replay(tenant, name, counted())
        done = progress.counts["done"]
        await progress.update(total=max(total, done))  # events archived meanwhile count too
        return {"read_model": name, "changes_applied": changes}

    return work
