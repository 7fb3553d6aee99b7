"""Stream management: create, list, read (seed ``/api/v1/streams``)."""

from __future__ import annotations

from aiohttp import web
from faust.web import Blueprint, View
from pydantic import ValidationError

from esb.streams import StreamCreate
from esb.views.http import json_response, principal, read_json, validation_problem

blueprint = Blueprint("streams")


@blueprint.route("/streams", name="streams")
class StreamsView(View):
    async def get(self, request: web.Request) -> web.Response:
        who = principal(request)
        streams = self.app.runtime.streams.directory.list(who.tenant)
        return json_response({"streams": streams, "total": len(streams)})

    async def post(self, request: web.Request) -> web.Response:
        who = principal(request)
        body = await read_json(request, 65536)
        try:
            req = StreamCreate.model_validate(body)
        except ValidationError as exc:
            raise validation_problem(exc) from None
        who.check_tenant(req.tenant_id)
        stream = await self.app.runtime.streams.create(req, tenant=who.tenant, user=who.subject)
        return json_response({"stream_id": stream["stream_id"], "stream": stream,
                              "message": "Stream created successfully"}, status=201)


@blueprint.route("/streams/{stream_id}", name="stream")
class StreamView(View):
    async def get(self, request: web.Request, stream_id: str) -> web.Response:
        who = principal(request)
        return json_response(await self.app.runtime.streams.get(who.tenant, stream_id))
