"""Stream processors (seed ``/api/v1/stream-processors``): create, list, read, start, stop, metrics."""

from __future__ import annotations

from aiohttp import web
from faust.web import Blueprint, View

from esb.processing.service import RUNNING, STOPPED
from esb.views.http import json_response, principal, read_json

blueprint = Blueprint("stream_processors")


@blueprint.route("/stream-processors", name="stream_processors")
class ProcessorsView(View):
    async def get(self, request: web.Request) -> web.Response:
        who = principal(request)
        records = self.app.processing.processors.list(who.tenant)
        return json_response({"processors": records, "total": len(records)})

    async def post(self, request: web.Request) -> web.Response:
        who = principal(request)
        body = await read_json(request, 262144)
        feature = self.app.processing
        record = await feature.processors.create(body, tenant=who.tenant, user=who.subject)
        await feature.prepare(record, record["processor_id"])
        return json_response({"processor_id": record["processor_id"], "processor": record,
                              "message": "Stream processor created successfully"}, status=201)


@blueprint.route("/stream-processors/{processor_id}", name="stream_processor")
class ProcessorView(View):
    async def get(self, request: web.Request, processor_id: str) -> web.Response:
        who = principal(request)
        return json_response(self.app.processing.processors.get(who.tenant, processor_id))


@blueprint.route("/stream-processors/{processor_id}/start", name="stream_processor_start")
class StartView(View):
    async def post(self, request: web.Request, processor_id: str) -> web.Response:
        who = principal(request)
        record = await self.app.processing.processors.set_status(who.tenant, processor_id,
                                                                 RUNNING)
        return json_response({"processor_id": record["processor_id"], "status": RUNNING,
                              "message": "Stream processor started successfully"})


@blueprint.route("/stream-processors/{processor_id}/stop", name="stream_processor_stop")
class StopView(View):
    async def post(self, request: web.Request, processor_id: str) -> web.Response:
        who = principal(request)
        record = await self.app.processing.processors.set_status(who.tenant, processor_id,
                                                                 STOPPED)
        await self.app.processing.worker.reconcile()  # this replica has stopped on return
        return json_response({"processor_id": record["processor_id"], "status": STOPPED,
                              "message": "Stream processor stopped successfully"})


@blueprint.route("/stream-processors/{processor_id}/metrics", name="stream_processor_metrics")
class MetricsView(View):
    async def get(self, request: web.Request, processor_id: str) -> web.Response:
        who = principal(request)
        feature = self.app.processing
        record = feature.processors.get(who.tenant, processor_id)
        metrics = await feature.metrics(record, record["processor_id"])
        return json_response({"processor_id": record["processor_id"],
                              "processor_name": record["processor_name"],
                              "status": record["status"], **metrics,
                              "last_error": record.get("last_error")})
