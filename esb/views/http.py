"""HTTP plumbing shared by every view: authentication, body limits, and RFC 9457 error bodies.

The middleware authenticates every request except the public operational endpoints and turns any
``EsbError`` into ``application/problem+json`` with a stable ``code``; unexpected exceptions become a
500 whose body names a correlation id, never internal details or secrets.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from esb import ids
from esb.auth import Authenticator, Principal
from esb.errors import EsbError, InvalidRequest, NotFound, PayloadTooLarge
from esb.metrics import HTTP_REQUESTS

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/health", "/metrics", "/"})
PROBLEM_JSON = "application/problem+json"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem(exc: EsbError, request: web.Request | None = None) -> web.Response:
    body = exc.to_problem(instance=request.path if request is not None else None)
    headers = {}
    if "retry_after" in exc.details:
        headers["Retry-After"] = str(exc.details["retry_after"])
    return web.json_response(body, status=exc.http_status, content_type=PROBLEM_JSON,
                             headers=headers, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def auth_middleware(authenticator: Authenticator) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        route_name = route.canonical if route is not None else "unmatched"
        status = 500
        try:
            if request.path not in PUBLIC_PATHS and request.method != "OPTIONS":
                token = request.headers.get("Authorization")
                if token is None and request.path.startswith("/ws/"):
                    query_token = request.query.get("access_token")
                    token = f"Bearer {query_token}" if query_token else None
                request["principal"] = authenticator.authenticate(token)
            response = await handler(request)
            status = response.status
            return response
        except EsbError as exc:
            status = exc.http_status
            return problem(exc, request)
        except web.HTTPException as exc:
            status = exc.status
            if exc.status == 404:
                return problem(NotFound(f"no route for {request.method} {request.path}"), request)
            if exc.status == 405:
                err = InvalidRequest(f"method {request.method} not allowed on {request.path}")
                err.http_status = 405
                return problem(err, request)
            if exc.status == 413:
                return problem(PayloadTooLarge("request body too large"), request)
            raise
        except Exception:
            incident = ids.new_id("inc")
            log.exception("unhandled error in %s %s (incident %s)", request.method,
                          request.path, incident)
            err = EsbError("internal error; quote the incident id to the operator",
                           incident=incident)
            return problem(err, request)
        finally:
            HTTP_REQUESTS.labels(request.method, route_name, str(status)).inc()

    return middleware


def principal(request: web.Request) -> Principal:
    p = request.get("principal")
    if p is None:  # only reachable if a view is wrongly marked public
        raise EsbError("request was not authenticated")
    return p  # type: ignore[no-any-return]


async def read_body(request: web.Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes; anything larger is a 413, never a truncated parse."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body of {request.content_length} bytes exceeds {limit}",
                              limit=limit)
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(65536):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    if not body:
        raise InvalidRequest("request body is empty; expected JSON")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None


async def read_json(request: web.Request, limit: int) -> Any:
    return parse_json(await read_body(request, limit))


def validation_problem(exc: Any) -> EsbError:
    """pydantic.ValidationError -> 422 with JSON paths."""
    from esb.errors import ValidationFailed

    errors = [{"path": "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}"
                                     for p in err["loc"]),
               "message": err["msg"]} for err in exc.errors()]
    return ValidationFailed("request body failed validation", errors=errors)


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=_dumps)
