"""Subscriptions (seed ``/api/v1/subscriptions``): create, list, read, status, cancel; plus
replay from a time or an offset and webhook secret rotation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from faust.web import Blueprint, View

from esb.delivery.lag import partition_lags
from esb.delivery.models import (
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionStatusResponse,
    parse_model,
)
from esb.delivery.replay_job import KIND as REPLAY_JOB
from esb.delivery.replay_job import replay_total
from esb.delivery.service import public_view
from esb.delivery.signing import DEFAULT_ROTATION_GRACE_S
from esb.errors import InvalidRequest, NotFound
from esb.views import API_PREFIX
from esb.views.http import json_response, principal, read_json

blueprint = Blueprint("subscriptions")


def _feature(view: View) -> Any:
    return view.app.delivery


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except ValueError:
        return None


@blueprint.route("/subscriptions", name="subscriptions")
class SubscriptionsView(View):
    async def get(self, request: web.Request) -> web.Response:
        who = principal(request)
        items = [public_view(s) for s in _feature(self).subscriptions.list(who.tenant)]
        status = request.query.get("status")
        if status:
            items = [s for s in items if s["status"] == status]
        return json_response({"subscriptions": items, "total": len(items)})

    async def post(self, request: web.Request) -> web.Response:
        who = principal(request)
        body = parse_model(SubscriptionCreate, await read_json(request, 65536))
        feature = _feature(self)
        stream = self.app.runtime.streams.directory.get(who.tenant, body.stream_id)
        if stream is None:
            raise NotFound(f"stream {body.stream_id!r} not found", stream_id=body.stream_id)
        redeliver = await feature.subscriptions.ensure_redeliver_topic(who.tenant)
        # Start at the current end of every topic: the subscription sees events published from
        # now on, including those published before its consumers first join the group.
        start = await feature.offsets.end_offsets([*stream["topics"].values(), redeliver])
        record, secret = await feature.subscriptions.create(
            body, tenant=who.tenant, user=who.subject, start_offsets=start)
        created = SubscriptionCreated(subscription_id=record["subscription_id"],
                                      webhook_secret=secret)
        return json_response({**created.model_dump(exclude_none=True),
                              "subscription": public_view(record)}, status=201)


@blueprint.route("/subscriptions/{subscription_id}", name="subscription")
class SubscriptionView(View):
    async def get(self, request: web.Request, subscription_id: str) -> web.Response:
        who = principal(request)
        return json_response(public_view(
            _feature(self).subscriptions.get(who.tenant, subscription_id)))

    async def delete(self, request: web.Request, subscription_id: str) -> web.Response:
        who = principal(request)
        record = await _feature(self).subscriptions.cancel(who.tenant, subscription_id)
        return json_response({"subscription_id": subscription_id, "status": record["status"],
                              "message": "Subscription cancelled successfully"})


@blueprint.route("/subscriptions/{subscription_id}/status", name="subscription-status")
class SubscriptionStatusView(View):
    async def get(self, request: web.Request, subscription_id: str) -> web.Response:
        who = principal(request)
        feature = _feature(self)
        record = feature.subscriptions.get(who.tenant, subscription_id)
        stats = await feature.worker.stats.read(subscription_id)
        rows = await feature.offsets.group_lag(record["kafka_group_id"],
                                               list(record["topics"].values()),
                                               record.get("start_offsets"))
        circuit = "closed"
        if record.get("webhook_url") and feature.worker.deliverer is not None:
            circuit = (await feature.worker.deliverer.circuit_state(
                record["webhook_url"], record["tenant_id"])).value
        status = SubscriptionStatusResponse(
            subscription_id=subscription_id,
            subscription_name=record["subscription_name"],
            stream_id=record["stream_id"],
            consumer_group_id=record["consumer_group_id"],
            status=record["status"],
            delivery_mode=record["delivery_mode"],
            created_at=record["created_at"],
            last_delivery_at=_when(stats.get("last_delivery_at")),
            last_success_at=_when(stats.get("last_success_at")),
            last_error=stats.get("last_error") or None,
            disabled_reason=record.get("disabled_reason"),
            consecutive_failures=int(stats.get("consecutive_failures") or 0),
            events_delivered=int(stats.get("events_delivered") or 0),
            events_failed=int(stats.get("events_failed") or 0),
            events_dead_lettered=int(stats.get("events_dead_lettered") or 0),
            events_filtered=int(stats.get("events_filtered") or 0),
            events_retrying=max(0, int(stats.get("events_retrying") or 0)),
            lag=sum(partition_lags(rows).values()),
            circuit_state=circuit,
        )
        return json_response(status.model_dump(mode="json"))


def _replay_target(body: Any) -> tuple[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object with from_time or from_offset")
    given = [k for k in ("from_time", "from_offset") if body.get(k) is not None]
    if len(given) != 1:
        raise InvalidRequest("give exactly one of from_time (RFC 3339) or from_offset")
    if given[0] == "from_time":
        try:
            moment = datetime.fromisoformat(str(body["from_time"]))
        except ValueError:
            raise InvalidRequest("from_time must be an RFC 3339 timestamp",
                                 field="from_time") from None
        if moment.tzinfo is None:
            raise InvalidRequest("from_time needs a timezone offset", field="from_time")
        return "from_time", moment
    offset = body["from_offset"]
    if isinstance(offset, bool):
        raise InvalidRequest("from_offset must be an integer or {partition: offset}")
    if isinstance(offset, int) and offset >= 0:
        return "from_offset", offset
    if isinstance(offset, dict):
        try:
            parsed = {int(p): int(o) for p, o in offset.items()}
        except (TypeError, ValueError):
            parsed = {}
        if parsed and all(p >= 0 and o >= 0 for p, o in parsed.items()):
            return "from_offset", parsed
    raise InvalidRequest("from_offset must be a non-negative integer or {partition: offset}",
                         field="from_offset")


@blueprint.route("/subscriptions/{subscription_id}/replay", name="subscription-replay")
class SubscriptionReplayView(View):
    async def post(self, request: web.Request, subscription_id: str) -> web.Response:
        who = principal(request)
        feature = _feature(self)
        record = feature.subscriptions.get(who.tenant, subscription_id)
        kind, value = _replay_target(await read_json(request, 16384))
        topics = list(record["topics"].values())
        ends = await feature.offsets.end_offsets(topics)  # the job's goal: the end as of now
        if kind == "from_time":
            offsets = await feature.offsets.offsets_at(topics, int(value.timestamp() * 1000))
            description = {"from_time": value.isoformat()}
        else:
            offsets = await feature.offsets.clamp(topics, value)
            description = {"from_offset": value}
        updated = await feature.subscriptions.replay(who.tenant, subscription_id,
                                                     description=description, offsets=offsets)
        replay_id = updated["replay"]["replay_id"]
        jobs = self.app.runtime.jobs  # progress and completion as a job (ADR 0016)
        job = await jobs.create(who.tenant, REPLAY_JOB, replay_total(offsets, ends),
                                user=who.subject,
                                request={"subscription_id": subscription_id,
                                         "replay_id": replay_id, **description,
                                         "offsets": offsets, "ends": ends})
        jobs.launch(job)
        response = json_response({**job, "subscription_id": subscription_id,
                                  "replay_id": replay_id, "offsets": offsets,
                                  "message": "Replay requested"}, status=202)
        response.headers["Location"] = f"{API_PREFIX}/jobs/{job['job_id']}"
        return response


@blueprint.route("/subscriptions/{subscription_id}/rotate-secret", name="subscription-rotate")
class SubscriptionRotateSecretView(View):
    async def post(self, request: web.Request, subscription_id: str) -> web.Response:
        who = principal(request)
        try:
            grace = float(request.query.get("grace_s", DEFAULT_ROTATION_GRACE_S))
        except ValueError:
            raise InvalidRequest("grace_s must be a number of seconds", field="grace_s") from None
        if not 0 <= grace <= 30 * 86400:
            raise InvalidRequest("grace_s must be between 0 and 30 days", field="grace_s")
        record, secret = await _feature(self).subscriptions.rotate_secret(
            who.tenant, subscription_id, grace_s=grace)
        return json_response({"subscription_id": subscription_id, "webhook_secret": secret,
                              "previous_secret_expires_at": record["previous_secret_expires_at"],
                              "message": "Webhook secret rotated"})
