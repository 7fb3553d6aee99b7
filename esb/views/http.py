"""HTTP plumbing shared by every view: authentication, body limits, and RFC 9457 error bodies.

The middleware authenticates every request except the public operational endpoints and turns any
``EsbError`` into ``application/problem+json`` with a stable ``code``; unexpected exceptions become a
500 whose body names a correlation id, never internal details or secrets. Hostile input is
refused before it reaches a view (ADR 0012): path parameters with control characters or longer
than :data:`MAX_PATH_PARAM`, NUL bytes in the query, batch bodies over ``ESB_MAX_BATCH_BYTES``,
JSON nested deeper than ``ESB_MAX_JSON_DEPTH`` or using ``NaN``/``Infinity``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from esb import api_spec, ids, jsonsafe
from esb.auth import Authenticator, Principal
from esb.authz import authorize as authorize_permission
from esb.errors import EsbError, InvalidRequest, MissingRole, NotFound, PayloadTooLarge, redact
from esb.metrics import HTTP_REQUESTS
from esb.observability import context as log_context
from esb.observability.web import traced
from esb.streams import stream_name_from

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset(api_spec.public_paths())  # the route table says which are public
PROBLEM_JSON = "application/problem+json"
API_PREFIX = "/api/v1"
#: Request bodies capped by ``ESB_MAX_BATCH_BYTES`` whatever the view asks for.
BATCH_PATHS = frozenset({f"{API_PREFIX}/events/batch"})
#: Longest accepted path parameter (ids and names are far shorter; this bounds lookups and logs).
MAX_PATH_PARAM = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
PRINCIPAL = web.RequestKey("esb_principal", Principal)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The request limits the web layer enforces (from Settings; defaults for tests/tools)."""

    max_json_depth: int = 64
    max_batch_bytes: int = 16 << 20


LIMITS = HttpLimits()
_LIMITS = web.RequestKey("esb_limits", HttpLimits)


def configure(settings: Any) -> HttpLimits:
    """Adopt the settings' limits; called once when the web server starts."""
    global LIMITS
    LIMITS = HttpLimits(max_json_depth=settings.max_json_depth,
                        max_batch_bytes=settings.max_batch_bytes)
    return LIMITS


def problem(exc: EsbError, request: web.Request | None = None) -> web.Response:
    """The problem response for ``exc``. A message that may quote a driver (hosts, SQL) stays
    in the server log, redacted; the client gets the generic detail and the stable code."""
    if exc.hides_message:
        redact_problem(exc, request)
    body = exc.to_problem(instance=request.path if request is not None else None)
    headers = {}
    if "retry_after" in exc.details:
        headers["Retry-After"] = str(exc.details["retry_after"])
    return web.json_response(body, status=exc.http_status, content_type=PROBLEM_JSON,
                             headers=headers, dumps=_dumps)


def redact_problem(exc: EsbError, request: web.Request | None) -> str:
    """Log what ``exc`` hides from the client (credentials redacted); return what it shows."""
    log.warning("%s %s answered %s %s: %s", request.method if request is not None else "-",
                request.path[:200] if request is not None else "-", exc.http_status, exc.code,
                redact(_describe(exc))[:2000])
    return exc.public_message


def _describe(exc: BaseException) -> str:
    """``exc`` and what it wraps, for the log."""
    parts = [f"{type(exc).__name__}: {exc}"]
    cause = exc.__cause__ or exc.__context__
    while cause is not None and len(parts) < 4:
        parts.append(f"{type(cause).__name__}: {cause}")
        cause = cause.__cause__ or cause.__context__
    return " <- ".join(parts)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def check_path_params(params: Mapping[str, str]) -> None:
    """Ids and names in the path are short printable text; anything else is a 400 here, before
    it reaches a lookup (PostgreSQL refuses NUL, logs would carry the control characters)."""
    for name, value in params.items():
        if len(value) > MAX_PATH_PARAM:
            raise InvalidRequest(f"path parameter {name} is longer than {MAX_PATH_PARAM} "
                                 "characters", parameter=name)
        if _CONTROL.search(value):
            raise InvalidRequest(f"path parameter {name} contains control characters",
                                 parameter=name)


def check_query(query: Mapping[str, str]) -> None:
    """NUL cannot be stored or compared by PostgreSQL: refuse it in any query value."""
    for name, value in query.items():
        if "\x00" in value or "\x00" in name:
            raise InvalidRequest("query parameters must not contain NUL characters",
                                 parameter=name[:64])


def _unexpected(exc: BaseException) -> EsbError | None:
    """Failures that are the input's fault though no view raised an EsbError for them."""
    if isinstance(exc, RecursionError):
        return InvalidRequest("the request nests too deeply to be processed")
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return None
    if isinstance(exc, psycopg.DataError):  # e.g. NUL in text, a number out of range
        return InvalidRequest("the request holds a value that cannot be stored "
                              "(e.g. a NUL character or an out-of-range number)")
    return None


ROUTES_BY_KEY = api_spec.by_method_path()


def authorize(request: web.Request, who: Principal, template: str,
              rows: Mapping[tuple[str, str], api_spec.Route] = ROUTES_BY_KEY) -> None:
    """The one role check (ADR 0015): the request's row in the route table names the permission
    it needs. A served route without a row is refused; an unmatched path is left to the 404."""
    if getattr(request.match_info, "http_exception", None) is not None:
        return
    row = rows.get(("GET" if request.method == "HEAD" else request.method, template))
    if row is None:
        raise MissingRole(f"{request.method} {template} declares no permission in the route "
                          "table", required="undeclared")
    stream = next((request.match_info.get(p) for p, kind in row.scoped
                   if kind is api_spec.Resource.STREAM), None)
    authorize_permission(who.permissions, who.narrowings, needs=row.needs,
                         operation_id=row.operation_id,
                         stream=stream_name_from(stream) if stream is not None else None)


def auth_middleware(authenticator: Authenticator, limits: HttpLimits | None = None,
                    routes: Iterable[api_spec.Route] | None = None) -> Any:
    """Authenticate, authorize against the route table (``routes``: the table by default),
    refuse hostile input, and render every failure as a problem body."""
    rows = ROUTES_BY_KEY if routes is None else api_spec.by_method_path(routes)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        route_name = route.canonical if route is not None else "unmatched"
        status = 500
        tenant: str | None = None
        logged = log_context.bind()  # this request's log context, reset when it is answered
        try:
            if request.path not in PUBLIC_PATHS and request.method != "OPTIONS":
                token = request.headers.get("Authorization")
                if token is None and request.path.startswith("/ws/"):
                    query_token = request.query.get("access_token")
                    token = f"Bearer {query_token}" if query_token else None
                request[PRINCIPAL] = await authenticator.authenticate_async(token)
                authorize(request, request[PRINCIPAL], route_name, rows)
                tenant = request[PRINCIPAL].tenant
                log_context.bind(tenant=tenant)
            check_path_params(request.match_info)
            check_query(request.query)
            request[_LIMITS] = limits or LIMITS
            response = await traced(request, handler, route_name, tenant)
            status = response.status
            return response
        except EsbError as exc:
            status = exc.http_status
            return problem(exc, request)
        except web.HTTPException as exc:
            status = exc.status
            if exc.status == 404:
                shown = request.path if len(request.path) <= 200 else request.path[:200] + "..."
                return problem(NotFound(f"no route for {request.method} {shown}"), request)
            if exc.status == 405:
                err = InvalidRequest(f"method {request.method} not allowed on {request.path}")
                err.http_status = 405
                return problem(err, request)
            if exc.status == 413:
                return problem(PayloadTooLarge("request body too large"), request)
            raise
        except Exception as exc:
            mapped = _unexpected(exc)
            if mapped is not None:
                status = mapped.http_status
                log.info("%s %s refused: %s", request.method, request.path[:200],
                         redact(_describe(exc))[:500])
                return problem(mapped, request)
            incident = ids.new_id("inc")
            log.exception("unhandled error in %s %s (incident %s)", request.method,
                          request.path, incident)
            err = EsbError("internal error; quote the incident id to the operator",
                           incident=incident)
            return problem(err, request)
        finally:
            log_context.reset(logged)
            HTTP_REQUESTS.labels(request.method, route_name, str(status)).inc()

    return middleware


def principal(request: web.Request) -> Principal:
    p = request.get(PRINCIPAL)
    if p is None:  # only reachable if a view is wrongly marked public
        raise EsbError("request was not authenticated")
    return p  # type: ignore[no-any-return]


async def read_body(request: web.Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes; anything larger is a 413, never a truncated parse. A cap
    the middleware set for the route (batch bodies: ``ESB_MAX_BATCH_BYTES``) lowers ``limit``."""
    if request.path in BATCH_PATHS:
        limit = min(limit, request.get(_LIMITS, LIMITS).max_batch_bytes)
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


# --- JSON bodies -------------------------------------------------------------------------


def parse_json(body: bytes | str, *, max_depth: int | None = None) -> Any:
    """A request body as the bus accepts JSON (:func:`esb.jsonsafe.loads`: bounded nesting,
    ``ESB_MAX_JSON_DEPTH``; no NaN/Infinity, lone surrogates or NUL characters) or a 400."""
    if not body:
        raise InvalidRequest("request body is empty; expected JSON")
    depth = LIMITS.max_json_depth if max_depth is None else max_depth
    try:
        return jsonsafe.loads(body, max_depth=depth, allow_nul=False)
    except jsonsafe.JsonRefused as exc:
        if exc.depth_limit is not None:
            raise InvalidRequest(f"request body nests deeper than {depth} levels (or its "
                                 "brackets do not balance)", limit=depth) from None
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None


async def read_json(request: web.Request, limit: int) -> Any:
    return body_json(request, await read_body(request, limit))


def body_json(request: web.Request, raw: bytes) -> Any:
    """``raw`` (the request's body, already read) parsed under this app's JSON limits."""
    return parse_json(raw, max_depth=request.get(_LIMITS, LIMITS).max_json_depth)


def validation_problem(exc: Any) -> EsbError:
    """pydantic.ValidationError -> 422 with JSON paths."""
    from esb.errors import ValidationFailed

    errors = [{"path": "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}"
                                     for p in err["loc"]),
               "message": err["msg"]} for err in exc.errors()]
    return ValidationFailed("request body failed validation", errors=errors)


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=_dumps)


def ascii_int(raw: str, *, maximum: int = 2**31 - 1) -> int | None:
    """``raw`` as a non-negative integer if it is ASCII digits within ``maximum``, else None.
    ``str.isdigit`` accepts '²' (int() then raises) and other scripts' digits."""
    if not (0 < len(raw) <= len(str(maximum)) and raw.isascii() and raw.isdigit()):
        return None
    value = int(raw)
    return value if value <= maximum else None
