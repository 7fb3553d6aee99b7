"""Jobs of the caller's tenant: status and progress of long operations (ADR 0016)."""

from __future__ import annotations

from aiohttp import web
from faust.web import Blueprint, View

from esb.errors import NotFound
from esb.views.http import json_response, principal

blueprint = Blueprint("jobs")


@blueprint.route("/jobs/{job_id}", name="job")
class JobView(View):
    async def get(self, request: web.Request, job_id: str) -> web.Response:
        who = principal(request)
        jobs = self.app.runtime.jobs
        try:
            return json_response(jobs.get(who.tenant, job_id))
        except NotFound:
            await self.app.runtime.catalog.sync()  # accepted a moment ago on another replica?
            return json_response(jobs.get(who.tenant, job_id))
