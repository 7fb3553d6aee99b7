"""User-defined read models (CQRS projections): define, query, rebuild and replay.

A definition maps event types to an upsert or delete of a document keyed by a field, with a
field mapping (see :mod:`esb.readside.readmodels`). The projection agent keeps every model up to
date as events are archived; ``rebuild`` re-derives a model from the archived log, ``replay``
re-applies one aggregate's or one stream's events without emptying the model. With
``Prefer: respond-async`` both answer 202 with a job (``GET /api/v1/jobs/{id}``, ADR 0016).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from faust.web import Blueprint, View
from pydantic import BaseModel, ConfigDict, ValidationError

from esb.errors import InvalidRequest
from esb.readside import EventArchive, ReadModelDefinition, ReadModelStore
from esb.readside.jobs import REBUILD, REPLAY, read_model_request
from esb.readside.replay import archived_events, feed_query
from esb.streams import stream_id_for, stream_name_from
from esb.views import API_PREFIX
from esb.views.http import (
    json_response,
    parse_json,
    principal,
    read_body,
    read_json,
    validation_problem,
)
from esb.views.personal import shown

blueprint = Blueprint("read_models")


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    aggregate_id: str | None = None
    stream_id: str | None = None


def _validated(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc) from None


def _store(view: View) -> ReadModelStore:
    return ReadModelStore(view.app.runtime.database, quotas=view.app.runtime.quotas)


async def _rebuild(view: View, tenant: str, definition: ReadModelDefinition) -> int:
    archive = EventArchive(view.app.runtime.database)
    return await _store(view).rebuild(tenant, definition.name,
                                      archived_events(archive, tenant, feed_query(definition)))


@blueprint.route("/read-models", name="read_models")
class ReadModelsView(View):
    async def get(self, request: web.Request) -> web.Response:
        who = principal(request)
        models = await _store(self).list_definitions(who.tenant)
        return json_response({"read_models": [m.model_dump(mode="json") for m in models],
                              "total": len(models)})

    async def post(self, request: web.Request) -> web.Response:
        """Create or replace a model, then build it from the archive."""
        who = principal(request)
        definition: ReadModelDefinition = _validated(ReadModelDefinition,
                                                     await read_json(request, 65536))
        await _store(self).save_definition(who.tenant, definition)
        changes = await _rebuild(self, who.tenant, definition)
        return json_response({"read_model": definition.model_dump(mode="json"),
                              "changes_applied": changes}, status=201)


@blueprint.route("/read-models/{name}", name="read_model")
class ReadModelView(View):
    async def get(self, request: web.Request, name: str) -> web.Response:
        who = principal(request)
        definition = await _store(self).get_definition(who.tenant, name)
        return json_response(definition.model_dump(mode="json"))

    async def delete(self, request: web.Request, name: str) -> web.Response:
        who = principal(request)
        await _store(self).delete_definition(who.tenant, name)
        return web.Response(status=204)


@blueprint.route("/read-models/{name}/documents", name="read_model_documents")
class DocumentsView(View):
    async def get(self, request: web.Request, name: str) -> web.Response:
        who = principal(request)
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            raise InvalidRequest("limit must be an integer", parameter="limit") from None
        page = await _store(self).list_documents(who.tenant, name, limit=limit,
                                                 cursor=request.query.get("cursor"))
        return json_response(await shown(request, self.app, {
            **page.model_dump(mode="json"), "count": len(page.documents)}))


@blueprint.route("/read-models/{name}/documents/{key}", name="read_model_document")
class DocumentView(View):
    async def get(self, request: web.Request, name: str, key: str) -> web.Response:
        who = principal(request)
        document = await _store(self).get_document(who.tenant, name, key)
        return json_response(await shown(request, self.app, document.model_dump(mode="json")))


async def _as_job(view: View, request: web.Request, kind: str, name: str,
                  job_request: dict[str, Any]) -> web.Response:
    """``Prefer: respond-async``: answer 202 with a job that does the work (ADR 0016)."""
    who = principal(request)
    jobs = view.app.runtime.jobs
    job = await jobs.create(who.tenant, kind, 0, user=who.subject, request=job_request)
    jobs.launch(job)
    response = json_response({**job, "read_model": name}, status=202)
    response.headers["Location"] = f"{API_PREFIX}/jobs/{job['job_id']}"
    response.headers["Preference-Applied"] = "respond-async"
    return response


def _wants_job(request: web.Request) -> bool:
    return "respond-async" in request.headers.get("Prefer", "")


@blueprint.route("/read-models/{name}/rebuild", name="read_model_rebuild")
class RebuildView(View):
    async def post(self, request: web.Request, name: str) -> web.Response:
        who = principal(request)
        definition = await _store(self).get_definition(who.tenant, name)
        if _wants_job(request):
            return await _as_job(self, request, REBUILD, name, read_model_request(name))
        changes = await _rebuild(self, who.tenant, definition)
        return json_response({"read_model": name, "changes_applied": changes})


@blueprint.route("/read-models/{name}/replay", name="read_model_replay")
class ReplayView(View):
    """Body ``{"aggregate_id": ...}`` or ``{"stream_id": ...}``: re-apply just those events."""

    async def post(self, request: web.Request, name: str) -> web.Response:
        who = principal(request)
        raw = await read_body(request, 65536)
        req: ReplayRequest = _validated(ReplayRequest, parse_json(raw) if raw else {})
        if (req.aggregate_id is None) == (req.stream_id is None):
            raise InvalidRequest("give exactly one of aggregate_id or stream_id")
        store = _store(self)
        definition = await store.get_definition(who.tenant, name)
        stream_id = stream_id_for(stream_name_from(req.stream_id)) if req.stream_id else None
        if _wants_job(request):
            return await _as_job(self, request, REPLAY, name, read_model_request(
                name, aggregate_id=req.aggregate_id, stream_id=stream_id))
        query = feed_query(definition, aggregate_id=req.aggregate_id, stream_id=stream_id)
        archive = EventArchive(self.app.runtime.database)
        changes = await store.replay(who.tenant, name, archived_events(archive, who.tenant, query))
        return json_response({"read_model": name, "changes_applied": changes})
