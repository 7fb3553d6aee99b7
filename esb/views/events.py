"""Publishing endpoints: the seed's JSON bodies, CloudEvents structured and binary HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from faust.web import Blueprint, View
from pydantic import ValidationError

from esb.auth import Principal
from esb.authz import Permission
from esb.envelope import (
    CE_BATCH,
    CE_JSON,
    Envelope,
    EventIn,
    envelope_from_http_binary,
    envelope_from_seed,
    envelopes_from_structured,
    is_json,
)
from esb.errors import InvalidRequest
from esb.idempotency import StoredResponse, fingerprint
from esb.views.http import json_response, parse_json, principal, read_body, validation_problem

blueprint = Blueprint("events")


def _seed_envelope(item: Any, who: Principal) -> Envelope:
    if not isinstance(item, dict):
        raise InvalidRequest("each event must be a JSON object")
    try:
        body = EventIn.model_validate(item)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    who.check_tenant(body.tenant_id)
    return envelope_from_seed(body, tenant=who.tenant, user=who.subject)


def _attributed(envelope: Envelope, who: Principal) -> Envelope:
    """The caller as ``userid`` unless the event names one; the tenant is checked by the
    publish decision (a ``tenantid`` naming another tenant is a 403 there)."""
    envelope.attributes.setdefault("userid", who.subject)
    return envelope


def _binary(request: web.Request, raw: bytes, who: Principal) -> Envelope:
    envelope = envelope_from_http_binary(request.headers, raw)
    if is_json(envelope.content_type) and raw:
        parse_json(raw)  # JSON data must be JSON the bus accepts (no NaN, bounded depth)
    return _attributed(envelope, who)


def parse_events(request: web.Request, raw: bytes, who: Principal, *, batch: bool
                 ) -> list[Envelope]:
    content_type = request.content_type
    if "ce-specversion" in request.headers:
        if batch:
            raise InvalidRequest("binary-mode CloudEvents carry one event; use the single endpoint")
        return [_binary(request, raw, who)]
    data = parse_json(raw)
    if content_type in (CE_JSON, CE_BATCH):
        if content_type == CE_JSON and isinstance(data, list):
            raise InvalidRequest(f"{CE_JSON} carries one event; use {CE_BATCH} for a list")
        return [_attributed(e, who) for e in envelopes_from_structured(data)]
    if not batch:
        return [_seed_envelope(data, who)]
    items = data.get("events") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise InvalidRequest('batch body must be {"events": [...]} or a JSON list, non-empty')
    return [_seed_envelope(item, who) for item in items]


async def idempotent(runtime: Any, request: web.Request, who: Principal, raw: bytes,
                     publish: Callable[[], Awaitable[dict[str, Any]]]) -> web.Response:
    """Answer with ``publish()``'s body (201), once per ``Idempotency-Key``: a retry with the
    same key and body gets the stored answer, the same key with another body a 409, and a
    failed attempt releases the key so the retry runs again."""
    idem_key = request.headers.get("Idempotency-Key")
    fp = fingerprint(raw)
    if idem_key is not None:
        stored = await runtime.idempotency.claim(who.tenant, idem_key, fp)
        if stored is not None:
            return json_response(stored.body, status=stored.status)
    try:
        body = await publish()
    except BaseException:
        if idem_key is not None:
            await runtime.idempotency.release(who.tenant, idem_key)
        raise
    if idem_key is not None:
        await runtime.idempotency.complete(who.tenant, idem_key, fp, StoredResponse(201, body))
    return json_response(body, status=201)


async def _publish(view: View, request: web.Request, *, batch: bool) -> web.Response:
    runtime = view.app.runtime
    settings = runtime.settings
    who = principal(request)
    limit = settings.max_batch_bytes if batch else settings.max_event_bytes + 65536
    raw = await read_body(request, limit)

    async def publish() -> dict[str, Any]:
        envelopes = parse_events(request, raw, who, batch=batch)
        if len(envelopes) > settings.max_batch_events:
            raise InvalidRequest(f"a batch holds at most {settings.max_batch_events} events",
                                 limit=settings.max_batch_events)
        results = await runtime.publisher.publish_many(
            envelopes, who.tenant, path="http-batch" if batch else "http",
            scope=who.narrowing(Permission.PUBLISH))
        if batch:
            return {"published": len(results), "failed": 0, "events": results,
                    "message": "Event batch published successfully"}
        return {**results[0], "message": "Event published successfully"}

    return await idempotent(runtime, request, who, raw, publish)


@blueprint.route("/events", name="events")
class EventsView(View):
    async def post(self, request: web.Request) -> web.Response:
        return await _publish(self, request, batch=False)


@blueprint.route("/events/batch", name="events-batch")
class EventBatchView(View):
    async def post(self, request: web.Request) -> web.Response:
        return await _publish(self, request, batch=True)
