"""The span of one webhook delivery attempt (ADR 0019).

A child of the delivered event's context (its record's ``traceparent``, else the CloudEvents
``ce_traceparent``). Retries read the same record headers back from the retry tier, so every
attempt is a sibling child of the same parent, numbered by ``esb.delivery.attempt``; the other
events of a batched delivery are span links. The webhook client puts this span's
``traceparent`` on the request, so the receiver continues the same trace.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from esb.observability import tracing

__all__ = ["delivery_span"]

MAX_LINKS = 64


@contextmanager
def delivery_span(subscription_id: str, headers: Sequence[Sequence[tuple[str, bytes]]],
                  attempts: Any) -> Iterator[Any]:
    """The attempt's span, current inside the block; None (and no work) with tracing off."""
    if not tracing.ENABLED or not headers:
        yield None
        return
    from opentelemetry import trace

    links = []
    for other in headers[1:MAX_LINKS + 1]:
        ctx = trace.get_current_span(tracing.extract_headers(other)).get_span_context()
        if ctx.is_valid:
            links.append(trace.Link(ctx))
    with tracing.span("esb.deliver", parent=tracing.extract_headers(headers[0]),
                      kind=tracing.SpanKind.CLIENT, links=links, attributes={
                          "esb.subscription_id": subscription_id,
                          "esb.delivery.attempt": attempts.total + 1,
                          "esb.delivery.events": len(headers)}) as span:
        yield span
