"""One exception hierarchy for the whole bus.

Every error the bus raises on purpose derives from :class:`EsbError`. Each class carries a
stable machine-readable ``code`` and the HTTP status the web layer answers with, so views never
map exceptions by hand::

    EsbError
    ├── ConfigurationError        start-up settings are wrong (the operator must fix them)
    ├── AuthenticationError  401  no/invalid/expired bearer token
    ├── PermissionDenied     403  authenticated, but not allowed (e.g. another tenant)
    ├── NotFound             404  a stream, schema, dead letter … does not exist for this tenant
    ├── Conflict             409  the write contradicts current state
    │   ├── AlreadyExists    409  a resource of that name exists
    │   └── VersionConflict  409  optimistic-concurrency check failed (carries current_version)
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

from typing import Any


class EsbError(Exception):
    """Root of every error the bus raises deliberately."""

    code: str = "esb_error"
    http_status: int = 500
    retriable: bool = False

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """Render as an RFC 9457 problem document (``application/problem+json``)."""
        body: dict[str, Any] = {
            "type": f"https://esb.dev/problems/{self.code}",
            "title": type(self).__name__,
            "status": self.http_status,
            "code": self.code,
            "detail": self.message,
        }
        if instance:
            body["instance"] = instance
        body.update(self.details)
        return body


class ConfigurationError(EsbError):
    code = "configuration_error"


class AuthenticationError(EsbError):
    code = "unauthenticated"
    http_status = 401


class PermissionDenied(EsbError):
    code = "forbidden"
    http_status = 403


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


class StorageUnavailable(EsbError):
    code = "storage_unavailable"
    http_status = 503
    retriable = True


class Timeout(EsbError, TimeoutError):
    code = "timeout"
    http_status = 504
    retriable = True
