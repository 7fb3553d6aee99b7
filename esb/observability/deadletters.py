"""Spans of the dead-letter indexer (ADR 0019): one ``esb.deadletter`` span per indexed dead
letter that carries a trace context, so a dead letter shows up in the trace of the request or
producer that sent the event.

A dead letter keeps the failed record's headers byte for byte: its ``traceparent`` names the hop
before the stage that failed (else ``ce_traceparent`` names where the event entered), and the
span is that context's child, with a link to it. A dead letter without a trace context opens no
span (it would only start a lonely root trace per record).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from esb.deadletter import split_headers
from esb.observability import tracing

__all__ = ["dead_letter_spans"]


def dead_letter_spans(records: Iterable[Sequence[tuple[str, bytes]]]) -> list[Any]:
    """Spans for the dead letters (their headers) just indexed; end them with
    :func:`tracing.end_all`. Empty with tracing off."""
    if not tracing.ENABLED:
        return []
    from opentelemetry import trace

    spans = []
    for headers in records:
        original, info = split_headers(headers)
        parent = tracing.extract_headers(original)
        failed = trace.get_current_span(parent).get_span_context()
        if not failed.is_valid:
            continue
        spans.append(tracing.start_span(
            "esb.deadletter", parent=parent, kind=tracing.SpanKind.CONSUMER,
            attributes={"esb.tenant": info.get("tenant", ""),
                        "esb.dlq.stage": info.get("stage", "unknown")[:64],
                        "esb.dlq.reason": info.get("reason", "unknown")[:64],
                        "esb.dlq.attempts": info.get("attempts", "1")[:8]},
        ))
        spans[-1].add_link(failed)
    return spans
