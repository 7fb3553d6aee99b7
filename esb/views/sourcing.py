"""Event sourcing API (seed ``/api/v1/event-sourcing``): append, reconstruct, aggregate events.

Any replica answers: a request is forwarded (body and all) to the worker that owns the
aggregate's partition (``app.router.key_store`` on the aggregates table), which produces the
command to the co-partitioned command topic and waits for its own agent's decision. Reads are
answered from the owner's tables, which hold every event up to the aggregate's version.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from datetime import datetime
from typing import Annotated, Any

import aiohttp
from aiohttp import web
from faust.web import Blueprint, View
from pydantic import AwareDatetime, Field, ValidationError
from yarl import URL

from esb import ids
from esb.auth import Principal
from esb.authz import Permission
from esb.errors import AlreadyExists, Conflict, EsbError, InvalidRequest, NotFound
from esb.metrics import SOURCING_RECONSTRUCT
from esb.observability import tracing
from esb.sourcing.append import AppendDecision, AppendOutcome
from esb.sourcing.commands import Delivery, OwnerCommand
from esb.sourcing.config import default_stream_name
from esb.sourcing.models import (
    AppendRequest,
    AppendResponse,
    ReconstructRequest,
    ReconstructResponse,
)
from esb.sourcing.outbound import envelope_for
from esb.sourcing.records import SourcedEvent
from esb.sourcing.store import aggregate_key
from esb.streams import StreamCreate, stream_name_from
from esb.topics import Priority
from esb.views.http import ascii_int, json_response, parse_json, principal, read_body
from esb.views.personal import shown

blueprint = Blueprint("event_sourcing")
log = logging.getLogger(__name__)

FORWARDED_HEADER = "X-Esb-Owner-Forwarded"
OWNER_HEADER = "X-Esb-Owner"  # on every answer: the replica that owns the aggregate
MAX_BODY = 2 << 20
MAX_PAGE = 1000


class OwnerUnavailable(EsbError):
    """The aggregate's owner is moving (rebalance, recovery, a crashed replica): retry soon."""

    code = "owner_unavailable"
    http_status = 503
    retriable = True


class SourcingAppendRequest(AppendRequest):
    """The seed's append body plus where to publish (defaults: see esb.sourcing.config)."""

    stream_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    priority: Priority = Priority.NORMAL
    source: Annotated[str, Field(min_length=1, max_length=256)] | None = None


class SourcingReconstructRequest(ReconstructRequest):
    use_snapshots: bool = True  # addition: False folds every event (for comparisons)


def _unavailable(reason: str) -> OwnerUnavailable:
    return OwnerUnavailable(f"the aggregate's owner is unavailable ({reason}); retry",
                            retry_after=1)


async def via_owner(view: View, request: web.Request, who: Principal, aggregate_id: str,
                    raw: bytes | None = None) -> web.Response | None:
    """Forward to the owner of the aggregate and return its answer; None if we are the owner."""
    app = view.app
    table = app.sourcing.tables.aggregates
    try:
        owner = app.router.key_store(table.name, aggregate_key(who.tenant, aggregate_id))
    except KeyError:
        raise _unavailable("no partition assignment yet") from None
    here = URL(app.conf.canonical_url)
    if (owner.host, owner.port) == (here.host, here.port):
        if app.rebalancing or app.in_recovery:
            raise _unavailable("tables are recovering")
        return None
    if request.headers.get(FORWARDED_HEADER):
        raise _unavailable("ownership is moving")
    headers = {k: v for k, v in request.headers.items()
               if k.lower() in ("authorization", "content-type", "accept")}
    headers[FORWARDED_HEADER] = "1"
    url = request.url.with_host(owner.host or "127.0.0.1").with_port(owner.port)
    try:
        async with app.http_client.request(request.method, url, headers=headers,
                                           data=raw) as resp:
            body = await resp.read()
            out_headers = {k: v for k, v in resp.headers.items()
                           if k.lower() in ("content-type", "retry-after",
                                            OWNER_HEADER.lower())}
            return web.Response(body=body, status=resp.status, headers=out_headers)
    except (aiohttp.ClientError, TimeoutError) as exc:
        # the owner's address is infrastructure: logged here, not told to the client
        log.warning("aggregate owner %s unreachable: %s", owner, type(exc).__name__)
        raise _unavailable(f"owner unreachable: {type(exc).__name__}") from None


def owned(view: View, response: web.Response) -> web.Response:
    response.headers[OWNER_HEADER] = str(view.app.conf.canonical_url)
    return response


def _parse(model: Any, raw: bytes) -> Any:
    return model.parse(parse_json(raw))


async def _delivery(app: Any, req: SourcingAppendRequest, who: Principal,
                    command_data: dict[str, Any]) -> tuple[Delivery, dict[str, Any] | None]:
    """The stream the event goes to (created on first use for the type's default stream);
    also runs every publish check (size, payload checks) before anything is decided, and
    seals personal fields (then the sealed event data is returned too)."""
    runtime = app.runtime
    name = req.stream_id or default_stream_name(req.aggregate_type)
    scope = who.narrowing(Permission.PUBLISH)
    if scope is not None:  # esb_scopes (ADR 0015): checked before the stream is created
        scope.require(stream=stream_name_from(name), event_type=req.event_type)
    if req.stream_id is None and runtime.streams.directory.get(who.tenant, name) is None:
        with contextlib.suppress(AlreadyExists):  # created concurrently by another request
            await runtime.streams.create(
                StreamCreate(stream_name=name, source_capability="event-sourcing",
                             partitions=runtime.settings.default_partitions,
                             description=f"events of {req.aggregate_type} aggregates"),
                tenant=who.tenant, user=who.subject)
    source = req.source or str(req.metadata.get("source") or "event-sourcing")
    provisional = SourcedEvent(
        event_id=command_data["event_id"], aggregate_id=req.aggregate_id,
        aggregate_type=req.aggregate_type, event_type=req.event_type, version=0,
        timestamp=command_data["timestamp"], data=req.event_data, tenant_id=who.tenant,
        correlation_id=req.correlation_id, causation_id=req.causation_id,
        metadata=req.metadata)
    envelope = envelope_for(provisional, Delivery("", name, None, req.priority.value, source))
    decided = runtime.publisher.check(envelope, who.tenant)
    await runtime.publish_quota.admit(who.tenant, 1, len(envelope.data or b""))  # ADR 0016
    sealed = None
    if decided.personal:  # the aggregate's store and snapshots keep only sealed values
        sealed = json.loads(await runtime.publisher.decision.seal(
            decided, envelope.attributes, who.tenant))
    return Delivery(decided.topic, decided.stream["stream_name"], decided.codec,
                    decided.priority.value, source), sealed


async def ask_owner(app: Any, command: OwnerCommand) -> Any:
    """Produce to the command topic and wait for this worker's agent to decide."""
    feature = app.sourcing
    if tracing.ENABLED:  # the owner's decision continues this request's trace (ADR 0019)
        command = dataclasses.replace(command, trace=tracing.current_carrier())
    future = feature.replies.expect(command.command_id)
    try:
        await feature.tables.commands.send(
            key=aggregate_key(command.tenant_id, command.aggregate_id), value=command.to_dict())
    except BaseException:
        feature.replies.discard(command.command_id)
        raise
    return await feature.replies.wait(command.command_id, future,
                                      feature.settings.command_timeout_s)


@blueprint.route("/event-sourcing/append", name="append")
class AppendView(View):
    async def post(self, request: web.Request) -> web.Response:
        who = principal(request)
        raw = await read_body(request, MAX_BODY)
        req: SourcingAppendRequest = _parse(SourcingAppendRequest, raw)
        who.check_tenant(req.tenant_id)
        forwarded = await via_owner(self, request, who, req.aggregate_id, raw)
        if forwarded is not None:
            return forwarded
        command = req.to_command(tenant_id=who.tenant, user_id=req.user_id or who.subject)
        delivery, sealed = await _delivery(self.app, req, who, {
            "event_id": command.event_id, "timestamp": command.timestamp})
        if sealed is not None:
            command = dataclasses.replace(command, data=sealed)
        decision: AppendDecision = await ask_owner(self.app, OwnerCommand(
            "append", ids.new_id("cmd"), who.tenant, req.aggregate_id, command, delivery))
        body = AppendResponse.from_decision(decision).model_dump(mode="json")
        body["stream_name"] = delivery.stream_name
        status = 201 if decision.outcome is AppendOutcome.ACCEPTED else 200
        return owned(self, json_response(body, status=status))


def _reconstruct(app: Any, who: Principal, aggregate_id: str, aggregate_type: str | None, *,
                 as_of_version: int | None, as_of_time: datetime | None,
                 use_snapshots: bool) -> dict[str, Any]:
    store = app.sourcing.store
    record = store.record(who.tenant, aggregate_id)
    if record is None:
        raise NotFound(f"aggregate {aggregate_id!r} not found", aggregate_id=aggregate_id)
    actual_type = record.aggregate.aggregate_type
    if aggregate_type is not None and aggregate_type != actual_type:
        raise Conflict(f"aggregate {aggregate_id!r} is of type {actual_type!r}",
                       aggregate_id=aggregate_id, aggregate_type=actual_type)
    started = time.perf_counter()
    result = store.reconstruct(who.tenant, aggregate_id, actual_type,
                               as_of_version=as_of_version, as_of_time=as_of_time,
                               use_snapshots=use_snapshots)
    elapsed_ms = (time.perf_counter() - started) * 1000
    SOURCING_RECONSTRUCT.labels(who.tenant).observe(elapsed_ms / 1000)
    body = ReconstructResponse.from_reconstruction(result).model_dump(mode="json")
    body["latest_version"] = record.aggregate.version
    body["reconstruct_ms"] = round(elapsed_ms, 3)
    return body


@blueprint.route("/event-sourcing/reconstruct", name="reconstruct")
class ReconstructView(View):
    async def post(self, request: web.Request) -> web.Response:
        who = principal(request)
        raw = await read_body(request, 65536)
        req: SourcingReconstructRequest = _parse(SourcingReconstructRequest, raw)
        forwarded = await via_owner(self, request, who, req.aggregate_id, raw)
        if forwarded is not None:
            return forwarded
        body = _reconstruct(self.app, who, req.aggregate_id, req.aggregate_type,
                            as_of_version=req.as_of_version, as_of_time=req.as_of_time,
                            use_snapshots=req.use_snapshots)
        if req.update_snapshots and body["current_version"] == body["latest_version"]:
            body["snapshot_version"] = await ask_owner(self.app, OwnerCommand(
                "snapshot", ids.new_id("cmd"), who.tenant, req.aggregate_id))
        return owned(self, json_response(await shown(request, self.app, body)))


def _int_param(request: web.Request, name: str, default: int | None, minimum: int = 0,
               ) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    value = ascii_int(raw.removeprefix("-"), maximum=2**63 - 1)
    if value is None:
        raise InvalidRequest(f"{name} must be an integer", parameter=name)
    if raw.startswith("-"):
        value = -value
    if value < minimum:
        raise InvalidRequest(f"{name} must be >= {minimum}", parameter=name)
    return value



def _time_param(request: web.Request) -> datetime | None:
    raw = request.query.get("as_of_time")
    if raw is None:
        return None
    try:
        from pydantic import TypeAdapter

        parsed: datetime = TypeAdapter(AwareDatetime).validate_python(raw)
    except ValidationError:
        raise InvalidRequest("as_of_time must be an RFC 3339 time with offset",
                             parameter="as_of_time") from None
    return parsed


@blueprint.route("/event-sourcing/aggregate/{aggregate_id}/events", name="aggregate_events")
class AggregateEventsView(View):
    """Paged by version: ``?from_version=1&limit=100``; ``next_from_version`` continues."""

    async def get(self, request: web.Request, aggregate_id: str) -> web.Response:
        who = principal(request)
        forwarded = await via_owner(self, request, who, aggregate_id)
        if forwarded is not None:
            return forwarded
        from_version = _int_param(request, "from_version", 1, minimum=1) or 1
        limit = min(_int_param(request, "limit", 100, minimum=1) or 100, MAX_PAGE)
        store = self.app.sourcing.store
        record = store.record(who.tenant, aggregate_id)
        if record is None:
            raise NotFound(f"aggregate {aggregate_id!r} not found", aggregate_id=aggregate_id)
        wanted_type = request.query.get("aggregate_type")
        if wanted_type is not None and wanted_type != record.aggregate.aggregate_type:
            raise NotFound(f"aggregate {aggregate_id!r} of type {wanted_type!r} not found",
                           aggregate_id=aggregate_id)
        current = record.aggregate.version
        last = min(current, from_version + limit - 1)
        events = [e.to_dict() for e in store.iter_events(
            who.tenant, aggregate_id, after_version=from_version - 1, to_version=last)]
        return owned(self, json_response(await shown(request, self.app, {
            "aggregate_id": aggregate_id, "aggregate_type": record.aggregate.aggregate_type,
            "current_version": current, "events": events, "count": len(events),
            "next_from_version": last + 1 if last < current else None})))


@blueprint.route("/event-sourcing/aggregate/{aggregate_id}/state", name="aggregate_state")
class AggregateStateView(View):
    """Temporal query: ``?as_of_version=N`` or ``?as_of_time=RFC3339`` (else the latest)."""

    async def get(self, request: web.Request, aggregate_id: str) -> web.Response:
        who = principal(request)
        forwarded = await via_owner(self, request, who, aggregate_id)
        if forwarded is not None:
            return forwarded
        as_of_version = _int_param(request, "as_of_version", None)
        as_of_time = _time_param(request)
        if as_of_version is not None and as_of_time is not None:
            raise InvalidRequest("give as_of_version or as_of_time, not both")
        return owned(self, json_response(await shown(request, self.app, _reconstruct(
            self.app, who, aggregate_id, request.query.get("aggregate_type"),
            as_of_version=as_of_version, as_of_time=as_of_time, use_snapshots=True))))
