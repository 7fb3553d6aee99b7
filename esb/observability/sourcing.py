"""Spans of an event-sourcing append (ADR 0019): the HTTP request → the owner agent's decision →
the accepted event's publish.

The command crosses the co-partitioned command topic as JSON, so the request's W3C context
travels inside it (``OwnerCommand.trace``, from :func:`tracing.current_carrier`). The owner opens
``esb.sourcing.decide`` (CONSUMER, child of that context) around the decision, and
``esb.publish`` (PRODUCER, ended at the broker acknowledgement, like an HTTP publish) whose id the
published event carries as ``traceparent``; archive and delivery continue from there. All of it
is skipped, at the cost of one module-global check, when tracing is off.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from esb.observability import tracing

__all__ = ["decide_span", "decided", "end_publish", "publish_span", "trace_carrier"]

_KEYS = ("traceparent", "tracestate")


def trace_carrier(raw: Any) -> dict[str, str]:
    """The W3C context a command carried, keeping only string ``traceparent``/``tracestate``
    (a command is our own JSON, but a malformed one must not break its decision)."""
    if not isinstance(raw, Mapping):
        return {}
    return {k: raw[k][:600] for k in _KEYS if isinstance(raw.get(k), str)}


@contextmanager
def decide_span(carrier: Mapping[str, str], kind: str, tenant: str) -> Iterator[Any]:
    """``esb.sourcing.decide``, current inside the block; None with tracing off or when the
    command carries no context (an untraced request starts no trace here)."""
    if not tracing.ENABLED or not carrier.get("traceparent"):
        yield None
        return
    with tracing.span("esb.sourcing.decide", parent=tracing.extract(carrier),
                      kind=tracing.SpanKind.CONSUMER,
                      attributes={"esb.tenant": tenant, "esb.sourcing.command": kind}) as span:
        yield span


def decided(span: Any, outcome: str, version: int) -> None:
    if span is not None:
        span.set_attribute("esb.sourcing.outcome", outcome)
        span.set_attribute("esb.sourcing.version", version)


def publish_span(headers: list[tuple[str, bytes]], topic: str, event_id: str, tenant: str
                 ) -> tuple[list[tuple[str, bytes]], Any]:
    """The headers of the accepted event, naming a new ``esb.publish`` span under the current
    one (the decision), and that span (end it with :func:`end_publish`); unchanged and None
    when no span is current."""
    if not tracing.ENABLED:
        return headers, None
    from opentelemetry import trace

    if not trace.get_current_span().get_span_context().is_valid:
        return headers, None
    span = tracing.start_span("esb.publish", kind=tracing.SpanKind.PRODUCER, attributes={
        "messaging.destination.name": topic, "esb.event_id": event_id, "esb.tenant": tenant})
    return tracing.kafka_trace_headers(headers, span), span


def end_publish(span: Any, error: BaseException | None = None) -> None:
    if span is not None:
        tracing.end_all([span], error)
