"""One exception hierarchy for the whole bus.

Every error the bus raises on purpose derives from :class:`EsbError`. Each class carries a
stable machine-readable ``code`` and the HTTP status the web layer answers with, so views never
map exceptions by hand::

    EsbError
    ├── ConfigurationError        start-up settings are wrong (the operator must fix them)
    ├── AuthenticationError  401  no/invalid/expired bearer token
    ├── PermissionDenied     403  authenticated, but not allowed (e.g. another tenant)
    │   ├── MissingRole      403  no role of the token grants the route's permission
    │   └── OutOfScope       403  the token's scopes exclude that stream or event type
    ├── NotFound             404  a stream, schema, dead letter … does not exist for this tenant
    ├── Conflict             409  the write contradicts current state
    │   ├── AlreadyExists    409  a resource of that name exists
    │   ├── VersionConflict  409  optimistic-concurrency check failed (carries current_version)
    │   └── QuotaExceeded    409  a tenant's count quota is used up (carries limit, maximum)
    ├── PayloadTooLarge      413  a body or event exceeds the configured limit
    ├── InvalidRequest       400  malformed body (bad JSON, wrong shape)
    ├── ValidationFailed     422  well-formed, but violates a rule or schema (carries paths)
    ├── ExpressionError      422  a CEL expression does not compile or fails to evaluate
    ├── RateLimited          429  too many requests (carries retry_after)
    ├── BrokerUnavailable    503  Kafka did not acknowledge; retriable
    ├── StorageUnavailable   503  PostgreSQL / Redis unreachable; retriable
    └── Timeout              504  also a builtin TimeoutError, so callers can catch either
"""

from __future__ import annotations

import re
from typing import Any

#: Modules whose exception text describes our infrastructure (host names, ports, SQL, user
#: names): an error caused by one of them never shows that text to a client.
DRIVER_MODULES = ("psycopg", "psycopg_pool", "aiokafka", "kafka", "redis", "socket", "ssl")

#: Details an error that hides its message may still show: they are ours, never driver text.
SAFE_DETAILS = frozenset({"retry_after", "incident", "limit"})

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/\s@]*@", re.IGNORECASE)
_SECRET_PAIRS = re.compile(r"(?P<key>password|passwd|pwd|secret|token|api[_-]?key)"
                           r"(?P<sep>\s*[=:]\s*)(?P<value>'[^']*'|\"[^\"]*\"|[^\s,;&]+)",
                           re.IGNORECASE)


def redact(text: str) -> str:
    """Remove credentials from text bound for a log: URL user-info and ``password=...`` pairs."""
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
    return _SECRET_PAIRS.sub(r"\g<key>\g<sep>***", text)


def _from_driver(exc: BaseException) -> bool:
    """True when ``exc`` (or what it wraps) was raised by a database/broker/cache driver or the
    OS network layer, whose messages name hosts, ports and SQL."""
    seen: set[int] = set()
    cause = _wrapped(exc)
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        module = type(cause).__module__.split(".", 1)[0]
        if module in DRIVER_MODULES or (isinstance(cause, OSError)
                                        and not isinstance(cause, EsbError | TimeoutError)):
            return True
        cause = _wrapped(cause)
    return False


def _wrapped(exc: BaseException) -> BaseException | None:
    """What ``exc`` wraps: its cause, or its context unless ``raise ... from None`` hid it
    (that idiom marks a message written on purpose for the client)."""
    if exc.__cause__ is not None:
        return exc.__cause__
    return None if exc.__suppress_context__ else exc.__context__


class EsbError(Exception):
    """Root of every error the bus raises deliberately."""

    code: str = "esb_error"
    http_status: int = 500
    retriable: bool = False
    #: What a client is told instead of ``message`` when the message may carry infrastructure
    #: detail (always, for classes that set it; else whenever a driver error is the cause).
    public_detail: str | None = None

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    @property
    def hides_message(self) -> bool:
        """True when ``message`` must stay server-side (it may quote a driver)."""
        return type(self).public_detail is not None or _from_driver(self)

    @property
    def public_message(self) -> str:
        """The ``detail`` a client may see: ``message``, unless it may quote a driver."""
        if not self.hides_message:
            return self.message
        return self.public_detail or (
            "a backing service failed; retry later" if self.retriable
            else "the request could not be completed; quote the code to the operator")

    @property
    def public_details(self) -> dict[str, Any]:
        """Extra problem members; only :data:`SAFE_DETAILS` when the message is hidden."""
        if not self.hides_message:
            return self.details
        return {k: v for k, v in self.details.items() if k in SAFE_DETAILS}

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """Render as an RFC 9457 problem document (``application/problem+json``); the detail
        is :attr:`public_message`, so driver text (hosts, SQL) never reaches a client."""
        body: dict[str, Any] = {
            "type": f"https://esb.dev/problems/{self.code}",
            "title": type(self).__name__,
            "status": self.http_status,
            "code": self.code,
            "detail": self.public_message,
        }
        if instance:
            body["instance"] = instance
        body.update(self.public_details)
        return body


class ConfigurationError(EsbError):
    code = "configuration_error"


class AuthenticationError(EsbError):
    code = "unauthenticated"
    http_status = 401


class PermissionDenied(EsbError):
    code = "forbidden"
    http_status = 403


class MissingRole(PermissionDenied):
    """Authenticated, but no role of the token grants what the route needs (esb.authz)."""

    code = "missing_role"


class OutOfScope(PermissionDenied):
    """The role is there, but the token's ``esb_scopes`` narrow it to other streams/types."""

    code = "out_of_scope"


class NotFound(EsbError):
    code = "not_found"
    http_status = 404


class Conflict(EsbError):
    code = "conflict"
    http_status = 409


class AlreadyExists(Conflict):
    code = "already_exists"


class VersionConflict(Conflict):
    code = "version_conflict"

    def __init__(self, message: str, *, current_version: int, **details: Any) -> None:
        super().__init__(message, current_version=current_version, **details)
        self.current_version = current_version


class QuotaExceeded(Conflict):
    """Creating one more would exceed the tenant's count quota; ``limit`` names it."""

    code = "quota_exceeded"

    def __init__(self, message: str, *, limit: str, maximum: int, **details: Any) -> None:
        super().__init__(message, limit=limit, maximum=maximum, **details)


class PayloadTooLarge(EsbError):
    code = "payload_too_large"
    http_status = 413


class InvalidRequest(EsbError):
    code = "invalid_request"
    http_status = 400


class ValidationFailed(EsbError):
    """The input is well-formed but breaks a rule; ``errors`` lists ``{path, message}``."""

    code = "validation_failed"
    http_status = 422

    def __init__(self, message: str, *, errors: list[dict[str, Any]] | None = None,
                 **details: Any) -> None:
        super().__init__(message, errors=errors or [], **details)
        self.errors = errors or []


class ExpressionError(EsbError):
    code = "invalid_expression"
    http_status = 422


class RateLimited(EsbError):
    code = "rate_limited"
    http_status = 429
    retriable = True


class BrokerUnavailable(EsbError):
    code = "broker_unavailable"
    http_status = 503
    retriable = True
    public_detail = "the message broker is unavailable; retry later"


class StorageUnavailable(EsbError):
    code = "storage_unavailable"
    http_status = 503
    retriable = True
    public_detail = "a storage backend is unavailable; retry later"


class Timeout(EsbError, TimeoutError):
    code = "timeout"
    http_status = 504
    retriable = True
