"""Reading the archive back in log order, to rebuild or replay read models from it."""

from __future__ import annotations

from collections.abc import AsyncIterator

from esb.readside.archive import MAX_PAGE, EventArchive, EventQuery
from esb.readside.models import ArchivedEvent
from esb.readside.readmodels import ReadModelDefinition


async def archived_events(archive: EventArchive, tenant_id: str, query: EventQuery,
                          ) -> AsyncIterator[ArchivedEvent]:
    """Every event matching ``query`` (all pages), ascending by (time, event id)."""
    page_query = query.model_copy(update={"order": "asc", "limit": MAX_PAGE, "cursor": None})
    while True:
        page = await archive.query(tenant_id, page_query)
        for event in page.events:
            yield event
        if page.next_cursor is None:
            return
        page_query = page_query.model_copy(update={"cursor": page.next_cursor})


def feed_query(definition: ReadModelDefinition, *, aggregate_id: str | None = None,
               stream_id: str | None = None) -> EventQuery:
    """The archive query for the events that feed ``definition`` (optionally narrowed)."""
    return EventQuery(event_types=list(definition.event_types)[:50], aggregate_id=aggregate_id,
                      stream_id=stream_id)
