"""Seed 003's REST surface: ``POST /events/publish?source=…`` and its health document.

Thin: parse, check the body's tenant against the token, hand the event to the one publisher.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from faust.web import Blueprint, View
from pydantic import ValidationError

from esb import anumate
from esb.authz import Permission
from esb.envelope import EventIn, envelope_from_seed
from esb.errors import EsbError
from esb.views.events import idempotent
from esb.views.http import (
    body_json,
    json_response,
    principal,
    read_body,
    validation_problem,
)
from esb.views.ops import health_checks

blueprint = Blueprint("anumate")


def _seed_problem(exc: ValidationError) -> EsbError:
    """A 422 whose paths name the request's fields (``data``, ``source``), not ``EventIn``'s."""
    problem = validation_problem(exc)
    for err in problem.details.get("errors", []):
        head, _, rest = err["path"].removeprefix("$.").partition(".")
        if head in anumate.SEED_NAMES:
            err["path"] = "$." + ".".join(filter(None, (anumate.SEED_NAMES[head], rest)))
    return problem


@blueprint.route("/events/publish", name="anumate-publish")
class AnumatePublishView(View):
    async def post(self, request: web.Request) -> web.Response:
        runtime = self.app.runtime
        who = principal(request)
        raw = await read_body(request, runtime.settings.max_event_bytes + 65536)

        async def publish() -> dict[str, Any]:
            try:
                body = anumate.AnumatePublishIn.model_validate(body_json(request, raw))
            except ValidationError as exc:
                raise validation_problem(exc) from None
            try:
                event = EventIn.model_validate(anumate.to_event_in(
                    body, request.query.get("source", anumate.DEFAULT_SOURCE)))
            except ValidationError as exc:
                raise _seed_problem(exc) from None
            who.check_tenant(event.tenant_id)
            await anumate.ensure_stream(runtime.streams, tenant=who.tenant, user=who.subject)
            envelope = envelope_from_seed(event, tenant=who.tenant, user=who.subject)
            result = await runtime.publisher.publish(envelope, who.tenant, path="http-anumate",
                                                     scope=who.narrowing(Permission.PUBLISH))
            return {**result, "status": "published", "message": "Event published successfully"}

        # the seed's clients retry; an Idempotency-Key makes the retry answer, not republish
        return await idempotent(runtime, request, who, raw, publish)


@blueprint.route("/events/health", name="anumate-health")
class AnumateHealthView(View):
    async def get(self, request: web.Request) -> web.Response:
        principal(request)
        body = anumate.health_shape(await health_checks(self.app))
        return json_response(body, status=200 if body["status"] == "healthy" else 503)
