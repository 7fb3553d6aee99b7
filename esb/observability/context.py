"""What a log line knows about the work in hand: tenant, stream, event id, correlation id.

One ``ContextVar`` holding a small immutable mapping: binding merges into a copy, so an asyncio
task (each HTTP request, each consumer loop) sees only what it or its parent bound. Bound where
the code already knows the values (HTTP middleware, the publish decision, a record replayed
alone by the consumer kit, a delivery attempt); never per record on the ingress hot path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import Context, ContextVar, Token, copy_context
from types import MappingProxyType

from esb.observability.tracecontext import trace_id_of

__all__ = ["FIELDS", "bind", "bound", "current", "detached", "from_headers", "reset"]

#: the context fields a log line may carry, in the order they are rendered
FIELDS = ("tenant", "stream", "event_id", "correlation_id", "subscription_id")

_EMPTY: Mapping[str, str] = MappingProxyType({})
_CONTEXT: ContextVar[Mapping[str, str]] = ContextVar("esb_log_context", default=_EMPTY)

#: CloudEvents Kafka headers -> context fields
_HEADER_FIELDS = {"ce_tenantid": "tenant", "ce_stream": "stream", "ce_id": "event_id",
                  "ce_correlationid": "correlation_id"}


def current() -> Mapping[str, str]:
    return _CONTEXT.get()


def bind(**fields: str | None) -> Token[Mapping[str, str]]:
    """Add ``fields`` (None values are skipped) to this task's context; returns a reset token."""
    merged = dict(_CONTEXT.get())
    merged.update({k: v for k, v in fields.items() if v is not None})
    return _CONTEXT.set(MappingProxyType(merged))


def reset(token: Token[Mapping[str, str]]) -> None:
    _CONTEXT.reset(token)


@contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    token = bind(**fields)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def from_headers(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    """The context fields a CloudEvents Kafka record names, with the trace id its
    ``traceparent`` (else ``ce_traceparent``) carries: its line can be found with its trace
    even where no span is open."""
    out: dict[str, str] = {}
    for key, value in headers:
        if key in ("traceparent", "ce_traceparent") and value is not None:
            trace_id = trace_id_of(value.decode(errors="replace"))
            if trace_id is not None and (key == "traceparent" or "trace_id" not in out):
                out["trace_id"] = trace_id
            continue
        name = _HEADER_FIELDS.get(key)
        if name is not None and value is not None:
            text = value.decode(errors="replace")[:256]
            out[name] = text if text.isprintable() else text.encode("unicode_escape").decode()
    return out


def detached() -> Context:
    """A copy of the current context without log fields or trace context: for a long-lived
    task (a consumer loop) started while a request was being served, so its lines and spans
    do not claim that request's tenant or trace."""
    from opentelemetry import context as otel_context

    ctx = copy_context()
    ctx.run(_CONTEXT.set, _EMPTY)
    ctx.run(otel_context.attach, otel_context.Context())
    return ctx
