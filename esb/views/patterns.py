"""Complex event processing patterns (``/api/v1/patterns``): create, list, read, start, stop,
metrics and recent matches. Alerts go to the tenant's alerts stream (``alerts`` by default),
which can be subscribed to like any stream."""

from __future__ import annotations

import time

from aiohttp import web
from faust.web import Blueprint, View

from esb.processing.partition_state import metrics_snapshot
from esb.processing.service import RUNNING, STOPPED
from esb.views.http import json_response, principal, read_json

blueprint = Blueprint("patterns")


@blueprint.route("/patterns", name="patterns")
class PatternsView(View):
    async def get(self, request: web.Request) -> web.Response:
        who = principal(request)
        records = self.app.processing.patterns.list(who.tenant)
        return json_response({"patterns": records, "total": len(records)})

    async def post(self, request: web.Request) -> web.Response:
        who = principal(request)
        body = await read_json(request, 65536)
        feature = self.app.processing
        record = await feature.patterns.create(body, tenant=who.tenant, user=who.subject)
        await feature.prepare(record, record["pattern_id"])
        return json_response({"pattern_id": record["pattern_id"], "pattern": record,
                              "message": "Pattern created successfully"}, status=201)


@blueprint.route("/patterns/{pattern_id}", name="pattern")
class PatternView(View):
    async def get(self, request: web.Request, pattern_id: str) -> web.Response:
        who = principal(request)
        return json_response(self.app.processing.patterns.get(who.tenant, pattern_id))


@blueprint.route("/patterns/{pattern_id}/start", name="pattern_start")
class StartView(View):
    async def post(self, request: web.Request, pattern_id: str) -> web.Response:
        who = principal(request)
        record = await self.app.processing.patterns.set_status(who.tenant, pattern_id, RUNNING)
        return json_response({"pattern_id": record["pattern_id"], "status": RUNNING,
                              "message": "Pattern started successfully"})


@blueprint.route("/patterns/{pattern_id}/stop", name="pattern_stop")
class StopView(View):
    async def post(self, request: web.Request, pattern_id: str) -> web.Response:
        who = principal(request)
        record = await self.app.processing.patterns.set_status(who.tenant, pattern_id, STOPPED)
        await self.app.processing.worker.reconcile()  # this replica has stopped on return
        return json_response({"pattern_id": record["pattern_id"], "status": STOPPED,
                              "message": "Pattern stopped successfully"})


@blueprint.route("/patterns/{pattern_id}/matches", name="pattern_matches")
class MatchesView(View):
    """Counters over all partitions and the most recent matches (alerts) of each partition."""

    async def get(self, request: web.Request, pattern_id: str) -> web.Response:
        who = principal(request)
        feature = self.app.processing
        record = feature.patterns.get(who.tenant, pattern_id)
        states = await feature.job_states(record, record["pattern_id"])
        recent = sorted((m for s in states for m in s.get("recent", [])),
                        key=lambda m: (m["last_timestamp"] or 0, m["alert_event_id"]))
        metrics = metrics_snapshot(states, now_ms=int(time.time() * 1000))
        return json_response({"pattern_id": record["pattern_id"],
                              "pattern_name": record["pattern_name"],
                              "status": record["status"],
                              "alerts_stream_id": record["alerts_stream_id"],
                              "matches_total": metrics["outputs_emitted"],
                              "metrics": metrics, "matches": recent,
                              "last_error": record.get("last_error")})
