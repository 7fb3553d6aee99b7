"""The audit trail over HTTP: the recording middleware and the tenant's log, proofs, checkpoints.

The middleware sits outside the authentication middleware, so it sees every final answer
(problem bodies included) and the principal the inner one set; it records what
:mod:`esb.audit.policy` selects and awaits the append before answering. The routes are for the
tenant's admins (the route table's ``needs`` column: admin).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from faust.web import Blueprint, View

from esb import ids
from esb.audit import policy
from esb.audit.checkpoints import public_key_b64
from esb.audit.entry import decode
from esb.audit.service import AuditService
from esb.errors import InvalidRequest
from esb.views.http import PRINCIPAL, Handler, ascii_int, json_response, principal

blueprint = Blueprint("audit")
REQUEST_ID_HEADER = "X-Request-Id"


def audit_middleware(service: AuditService) -> Any:
    """Record state changes and refusals (ADR 0017); answers are never changed by it."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        template = resource.canonical if resource is not None else ""
        route = policy.route_for(request.method, template)
        status = 500
        response: web.StreamResponse | None = None
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            kind = policy.kind_of(route, status)
            if kind is not None:
                await _record(service, request, route, kind, status, response)

    return middleware


async def _record(service: AuditService, request: web.Request, route: Any, kind: str,
                  status: int, response: web.StreamResponse | None) -> None:
    who = request.get(PRINCIPAL)
    sent = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = sent if policy.REQUEST_ID.match(sent) else ids.new_id("req")
    body = response.body if isinstance(response, web.Response) else None
    record = policy.build(
        kind=kind, tenant=who.tenant if who else "", actor=who.subject if who else "",
        request_id=request_id, method=request.method, route=route, status=status,
        path_params=dict(request.match_info) if route is not None else {},
        created=policy.created_ids(body if isinstance(body, bytes) else None, status))
    await service.record(record)
    if response is not None and not response.prepared:
        response.headers[REQUEST_ID_HEADER] = request_id


def _service(view: View) -> AuditService:
    service: AuditService | None = view.app.audit
    assert service is not None  # the blueprint is registered only with the service
    return service


def _number(name: str, raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    value = ascii_int(raw, maximum=2**62)
    if value is None:
        raise InvalidRequest(f"{name} must be a non-negative integer", parameter=name)
    return value


@blueprint.route("/audit", name="audit_entries")
class AuditEntries(View):
    async def get(self, request: web.Request) -> web.Response:
        tenant = principal(request).tenant
        after = _number("after", request.query.get("after"))
        limit = _number("limit", request.query.get("limit"))
        limit = 100 if limit is None else limit
        if not 1 <= limit <= 1000:
            raise InvalidRequest("limit must be between 1 and 1000", parameter="limit")
        rows = await _service(self).log_store.page(tenant, after=-1 if after is None else after,
                                                   limit=limit)
        entries = [{**decode(r.entry), "leaf_hash": r.leaf_hash.hex()} for r in rows]
        return json_response({"entries": entries, "count": len(entries),
                              "next_after": rows[-1].seq if len(rows) == limit else None})


@blueprint.route("/audit/proof/{entry}", name="audit_proof")
class AuditProof(View):
    async def get(self, request: web.Request, entry: str) -> web.Response:
        tenant = principal(request).tenant
        seq = _number("entry", entry)
        assert seq is not None
        proof = await _service(self).log_store.proof(
            tenant, seq, tree_size=_number("tree_size", request.query.get("tree_size")),
            from_size=_number("from_size", request.query.get("from_size")))
        return json_response(proof)


@blueprint.route("/audit/checkpoint", name="audit_checkpoint")
class AuditCheckpoint(View):
    async def get(self, request: web.Request) -> web.Response:
        service = _service(self)
        latest = await service.log_store.latest_checkpoint(principal(request).tenant)
        return json_response(_checkpoint_body(service, latest))

    async def post(self, request: web.Request) -> web.Response:
        service = _service(self)
        made = await service.log_store.checkpoint(principal(request).tenant, service.signer)
        return json_response(_checkpoint_body(service, made))


def _checkpoint_body(service: AuditService, checkpoint: Any) -> dict[str, Any]:
    return {"checkpoint": checkpoint.to_json() if checkpoint is not None else None,
            "public_key": public_key_b64(service.signer.public), "algorithm": "Ed25519",
            "key_id": service.signer.key_id}
