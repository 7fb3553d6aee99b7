"""The event archive API (PostgreSQL read side): one event, queries, a stream's events and
an event's processing history. Every read is scoped to the caller's tenant."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from faust.web import Blueprint, View
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from esb.readside import EventArchive, EventQuery, ProcessingHistory
from esb.readside.archive import MAX_PAGE
from esb.streams import stream_id_for, stream_name_from
from esb.views.http import json_response, principal, read_json, validation_problem
from esb.views.personal import shown

blueprint = Blueprint("archive")


class StreamEventsParams(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    limit: int = Field(100, ge=1, le=MAX_PAGE)
    cursor: str | None = None
    order: str = Field("asc", pattern="^(asc|desc)$")
    start_time: Any = None
    end_time: Any = None


def _validated(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc) from None


# "/events/query" is declared before "/events/{event_id}" so it wins the match.
@blueprint.route("/events/query", name="events_query")
class EventQueryView(View):
    async def post(self, request: web.Request) -> web.Response:
        who = principal(request)
        query: EventQuery = _validated(EventQuery, await read_json(request, 65536))
        page = await EventArchive(self.app.runtime.database).query(who.tenant, query)
        return json_response(await shown(request, self.app, page.to_json()))


@blueprint.route("/events/{event_id}/processing-history", name="processing_history")
class ProcessingHistoryView(View):
    async def get(self, request: web.Request, event_id: str) -> web.Response:
        who = principal(request)
        history = await ProcessingHistory(self.app.runtime.database).for_event(who.tenant,
                                                                               event_id)
        return json_response(history.to_json())


@blueprint.route("/events/{event_id}", name="archived_event")
class ArchivedEventView(View):
    async def get(self, request: web.Request, event_id: str) -> web.Response:
        who = principal(request)
        event = await EventArchive(self.app.runtime.database).get(who.tenant, event_id)
        return json_response(await shown(request, self.app, event.to_seed_dict()))


@blueprint.route("/streams/{stream_id}/events", name="stream_events")
class StreamEventsView(View):
    """``?limit=&cursor=&order=asc|desc&start_time=&end_time=`` (keyset paging)."""

    async def get(self, request: web.Request, stream_id: str) -> web.Response:
        who = principal(request)
        stream = await self.app.runtime.streams.get(who.tenant, stream_id)  # NotFound if absent
        params = _validated(StreamEventsParams, dict(request.query))
        query = _validated(EventQuery, {
            "stream_id": stream_id_for(stream_name_from(stream["stream_name"])),
            "limit": params.limit, "cursor": params.cursor, "order": params.order,
            "start_time": params.start_time, "end_time": params.end_time})
        page = await EventArchive(self.app.runtime.database).query(who.tenant, query)
        return json_response(await shown(request, self.app,
                                         {"stream_id": stream["stream_id"], **page.to_json()}))
