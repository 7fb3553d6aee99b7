"""PostgreSQL (psycopg) and Redis client spans, from the maintained OpenTelemetry
instrumentations, installed only when tracing is on (ADR 0019).

**Children only.** Most queries and Redis commands of a worker run in background loops (the
archive projection, the catalog, delivery's breaker) outside any span; traced as roots, each
would start a trace of its own. The instrumentations are given a tracer that opens a span only
under a valid current span, so a query shows up inside the trace of the request or stage that
made it and nowhere else. Statement parameters are never captured (the instrumentations'
default): a span carries the SQL text with placeholders, and Redis commands as ``SET ? ?``.

``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` (the standard variable: ``psycopg``, ``redis``) turns
either off.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

from opentelemetry import trace

__all__ = ["instrument", "uninstrument"]

log = logging.getLogger(__name__)


class _ChildrenOnlyTracer(trace.Tracer):
    """Delegates to the SDK tracer when there is a parent; else a non-recording span."""

    def __init__(self, inner: trace.Tracer) -> None:
        self._inner = inner

    def start_span(self, name: str, context: Any = None, *args: Any, **kwargs: Any
                   ) -> trace.Span:
        if not trace.get_current_span(context).get_span_context().is_valid:
            return trace.INVALID_SPAN
        return self._inner.start_span(name, context, *args, **kwargs)

    def start_as_current_span(self, name: str, context: Any = None, *args: Any,
                              **kwargs: Any) -> Any:
        if not trace.get_current_span(context).get_span_context().is_valid:
            return nullcontext(trace.INVALID_SPAN)
        return self._inner.start_as_current_span(name, context, *args, **kwargs)


class _ChildrenOnly(trace.TracerProvider):
    def __init__(self, inner: trace.TracerProvider) -> None:
        self._inner = inner

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _ChildrenOnlyTracer(self._inner.get_tracer(*args, **kwargs))


def _instrumentors() -> dict[str, Any]:
    found: dict[str, Any] = {}
    try:
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

        found["psycopg"] = PsycopgInstrumentor()
    except ImportError:  # optional at run time: tracing works without client spans
        log.info("opentelemetry-instrumentation-psycopg is not installed: no PostgreSQL spans")
    try:
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        found["redis"] = RedisInstrumentor()
    except ImportError:
        log.info("opentelemetry-instrumentation-redis is not installed: no Redis spans")
    return found


def instrument(provider: trace.TracerProvider, environ: Mapping[str, str]) -> list[str]:
    """Instrument psycopg and Redis with ``provider`` (again, if a previous provider was used);
    returns the names instrumented. Call before the database pool and Redis clients connect:
    psycopg is traced per connection."""
    disabled = {n.strip().lower() for n in
                environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")}
    done = []
    for name, instrumentor in _instrumentors().items():
        if name in disabled:
            continue
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
        instrumentor.instrument(tracer_provider=_ChildrenOnly(provider))
        done.append(name)
    return done


def uninstrument() -> None:
    for instrumentor in _instrumentors().values():
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
