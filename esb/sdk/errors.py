"""Typed client errors, one per problem ``code`` the API answers with.

The bus answers every failure with an RFC 9457 problem document carrying a stable ``code``;
mapping that code (not the status alone) lets callers catch ``VersionConflict`` apart from
``AlreadyExists`` although both are 409s.
"""

from __future__ import annotations

from typing import Any


class EsbApiError(Exception):
    """Root of every error the SDK raises for an HTTP answer (or for no answer at all)."""

    status: int = 0
    retriable: bool = False

    def __init__(self, detail: str, *, status: int | None = None, code: str | None = None,
                 problem: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        self.code = code or type(self).__name__
        self.problem: dict[str, Any] = problem or {}

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.detail}" if self.status else self.detail


class InvalidRequest(EsbApiError):
    status = 400


class Unauthenticated(EsbApiError):
    status = 401


class Forbidden(EsbApiError):
    status = 403


class NotFound(EsbApiError):
    status = 404


class Conflict(EsbApiError):
    status = 409


class AlreadyExists(Conflict):
    pass


class VersionConflict(Conflict):
    @property
    def current_version(self) -> int | None:
        value = self.problem.get("current_version")
        return int(value) if value is not None else None


class PayloadTooLarge(EsbApiError):
    status = 413


class ValidationFailed(EsbApiError):
    status = 422

    @property
    def errors(self) -> list[dict[str, Any]]:
        """``[{path, message}, ...]`` as the API reported them."""
        return list(self.problem.get("errors") or [])


class RateLimited(EsbApiError):
    status = 429
    retriable = True

    @property
    def retry_after(self) -> float | None:
        value = self.problem.get("retry_after")
        return float(value) if value is not None else None


class Unavailable(EsbApiError):
    """503/504, or no answer at all (connection refused, reset, timed out)."""

    status = 503
    retriable = True


_BY_CODE: dict[str, type[EsbApiError]] = {
    "invalid_request": InvalidRequest,
    "unauthenticated": Unauthenticated,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "conflict": Conflict,
    "already_exists": AlreadyExists,
    "version_conflict": VersionConflict,
    "payload_too_large": PayloadTooLarge,
    "validation_failed": ValidationFailed,
    "invalid_expression": ValidationFailed,
    "rate_limited": RateLimited,
    "broker_unavailable": Unavailable,
    "storage_unavailable": Unavailable,
    "timeout": Unavailable,
}
_BY_STATUS: dict[int, type[EsbApiError]] = {
    400: InvalidRequest, 401: Unauthenticated, 403: Forbidden, 404: NotFound, 409: Conflict,
    413: PayloadTooLarge, 422: ValidationFailed, 429: RateLimited, 503: Unavailable,
    504: Unavailable,
}


def from_response(status: int, body: Any, headers: Any = None) -> EsbApiError:
    """The typed error for a non-2xx answer: by problem ``code``, else by status."""
    problem: dict[str, Any] = body if isinstance(body, dict) else {}
    code = problem.get("code")
    cls = _BY_CODE.get(code) if isinstance(code, str) else None
    cls = cls or _BY_STATUS.get(status) or (Unavailable if status >= 500 else EsbApiError)
    if status == 429 and "retry_after" not in problem and headers is not None:
        header = headers.get("Retry-After")
        if header and header.replace(".", "", 1).isdigit():
            problem = {**problem, "retry_after": float(header)}
    detail = str(problem.get("detail") or problem.get("message") or
                 (body if isinstance(body, str) and body else f"HTTP {status}"))
    return cls(detail, status=status, code=code if isinstance(code, str) else None,
               problem=problem)
