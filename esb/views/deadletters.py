"""Dead letters: list, read, and redrive (one, or a filtered set) to their destination."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from faust.web import Blueprint, View

from esb.auth import Principal
from esb.deadletter_store import UNATTRIBUTED, DeadLetterFilter, DeadLetterStore
from esb.errors import InvalidRequest, PermissionDenied, StorageUnavailable
from esb.kafka import acked
from esb.metrics import REDRIVEN
from esb.views import API_PREFIX
from esb.views.http import json_response, principal, read_json

blueprint = Blueprint("deadletters")


def _store(view: View) -> DeadLetterStore:
    store = view.app.runtime.dead_letters
    if store is None:
        raise StorageUnavailable("the dead-letter index needs a database")
    return store


def _scope(who: Principal, params: Any) -> str:
    """Own tenant; operators may also read records that named no tenant."""
    if str(params.get("unattributed", "")).lower() in ("1", "true", "yes"):
        if not who.is_operator:
            raise PermissionDenied("only operators may read unattributed dead letters")
        return UNATTRIBUTED
    return who.tenant


def _time(value: Any, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidRequest(f"{name} must be an ISO 8601 timestamp", field=name) from None


def _filter(params: Any) -> DeadLetterFilter:
    status = params.get("status", "DEAD")
    if status not in ("DEAD", "REDRIVEN", "ALL"):
        raise InvalidRequest("status must be DEAD, REDRIVEN or ALL", field="status")
    return DeadLetterFilter(
        reason=_text(params, "reason"), stage=_text(params, "stage"),
        event_type=_text(params, "event_type"), stream=_text(params, "stream"),
        status=None if status == "ALL" else status,
        since=_time(params.get("since"), "since"), until=_time(params.get("until"), "until"))


def _text(params: Any, name: str) -> str | None:
    """A text filter: absent, or a string (a JSON body may carry a number or a list there)."""
    value = params.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string", field=name)
    return value


def _limit(value: Any, default: int = 100) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidRequest("limit must be an integer", field="limit")
    try:
        return int(value)
    except ValueError:
        raise InvalidRequest("limit must be an integer", field="limit") from None


async def redrive(view: View, tenant: str, dlq_id: str) -> dict[str, Any]:
    """Re-publish the untouched record to its destination; its event id does not change."""
    runtime = view.app.runtime
    row = await _store(view).get(tenant, dlq_id)
    destination = row["destination"]
    allowed = (destination in runtime.topics.ingress_topics
               or (tenant and destination.startswith(f"{runtime.topics.prefix}.{tenant}.")))
    if not allowed:
        raise PermissionDenied(f"destination {destination!r} is not this tenant's topic")
    key, value, headers = row["_raw"]
    future = await runtime.producers.send(destination, value, key=key, headers=headers)
    meta = await acked(future, destination)
    await _store(view).mark_redriven(tenant, dlq_id)
    REDRIVEN.labels(tenant or "-").inc()
    return {"dlq_id": dlq_id, "event_id": row["event_id"], "destination": destination,
            "partition": meta.partition, "offset": meta.offset}


@blueprint.route("/dead-letters", name="dead-letters")
class DeadLettersView(View):
    async def get(self, request: web.Request) -> web.Response:
        who = principal(request)
        tenant = _scope(who, request.query)
        items = await _store(self).list(tenant, _filter(request.query),
                                        limit=_limit(request.query.get("limit")),
                                        before=request.query.get("before"))
        return json_response({"dead_letters": items, "count": len(items),
                              "next_before": items[-1]["dlq_id"] if items else None})


@blueprint.route("/dead-letters/redrive", name="dead-letters-redrive")
class DeadLetterBulkRedriveView(View):
    async def post(self, request: web.Request) -> web.Response:
        who = principal(request)
        body = await read_json(request, 65536)
        if not isinstance(body, dict):
            raise InvalidRequest("body must be a JSON object of filters")
        tenant = _scope(who, body)
        limit = _limit(body.get("limit"), 1000)
        if not 1 <= limit <= 10000:
            raise InvalidRequest("limit must be between 1 and 10000", field="limit")
        ids_ = await _store(self).ids_matching(tenant, _filter({**body, "status": "DEAD"}), limit)
        if "respond-async" in request.headers.get("Prefer", ""):  # a job (ADR 0016)
            jobs = self.app.runtime.jobs
            job = await jobs.create(tenant, "dead_letter_redrive", len(ids_), user=who.subject,
                                    request=body)
            jobs.start(job, ids_, lambda dlq_id: redrive(self, tenant, dlq_id))
            response = json_response(job, status=202)
            response.headers["Location"] = f"{API_PREFIX}/jobs/{job['job_id']}"
            response.headers["Preference-Applied"] = "respond-async"
            return response
        results = [await redrive(self, tenant, i) for i in ids_]
        return json_response({"redriven": len(results), "results": results,
                              "message": "Dead letters redriven"})


@blueprint.route("/dead-letters/{dlq_id}", name="dead-letter")
class DeadLetterView(View):
    async def get(self, request: web.Request, dlq_id: str) -> web.Response:
        who = principal(request)
        row = await _store(self).get(_scope(who, request.query), dlq_id)
        row.pop("_raw", None)
        return json_response(row)


@blueprint.route("/dead-letters/{dlq_id}/redrive", name="dead-letter-redrive")
class DeadLetterRedriveView(View):
    async def post(self, request: web.Request, dlq_id: str) -> web.Response:
        who = principal(request)
        result = await redrive(self, _scope(who, request.query), dlq_id)
        return json_response({**result, "message": "Dead letter redriven"})
