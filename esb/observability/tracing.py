"""OpenTelemetry tracing across every hop of an event, off (and free) unless configured.

Configuration is the standard ``OTEL_*`` environment (``OTEL_TRACES_EXPORTER``,
``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_TRACES_SAMPLER``/``_ARG``, ``OTEL_SERVICE_NAME``,
``OTEL_SDK_DISABLED``). Unlike the SDK's own default (``otlp``), an unset exporter means tracing
is **off**: :data:`ENABLED` stays False, no provider is built, and hot paths skip every span and
header parse behind one module-global check (ADR 0019).

Context travels in Kafka headers twice: the W3C ``traceparent``/``tracestate`` headers, rewritten
at every hop (publish, route), and the CloudEvents distributed-tracing extension
(``ce_traceparent``/``ce_tracestate``), set once where the event enters the bus and kept as the
event's own attribute. Webhook requests carry the delivery attempt's ``traceparent``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["ENABLED", "SpanKind", "configure", "current_carrier", "current_ids", "end_all",
           "extract", "extract_headers", "hop", "inject_http", "kafka_trace_headers", "maybe_span",
           "record_spans", "span", "stamp_current", "start_span", "tracer"]

#: False unless :func:`configure` set up a provider; hot paths test this before anything else
ENABLED = False
_tracer: trace.Tracer = trace.NoOpTracer()
_provider: Any = None
_PROPAGATOR = TraceContextTextMapPropagator()
_TRACE_HEADERS = ("traceparent", "tracestate", "ce_traceparent", "ce_tracestate")


def tracer() -> trace.Tracer:
    return _tracer


def exporter_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """The configured span exporters; empty means tracing is off."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "none").split(",")]
    return [n for n in names if n and n != "none"]


def configure(*, service_instance: str, traces_file: str | None = None,
              exporters: Sequence[Any] = (), environ: Mapping[str, str] | None = None) -> bool:
    """Build the tracer provider from the environment (plus ``exporters``, for tests).

    ``otlp`` exports in batches over OTLP/HTTP; ``console`` writes one JSON span per line to
    ``traces_file`` (``ESB_TRACES_FILE``) or stdout. Returns whether tracing is on."""
    global ENABLED, _tracer, _provider
    names = exporter_names(environ)
    if not names and not exporters:
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    env = os.environ if environ is None else environ
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or "esb",
                                "service.instance.id": service_instance})
    provider = TracerProvider(resource=resource)  # sampler from OTEL_TRACES_SAMPLER(_ARG)
    for exporter in exporters:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    for name in names:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            provider.add_span_processor(SimpleSpanProcessor(_console_exporter(traces_file)))
        else:
            from esb.errors import ConfigurationError

            raise ConfigurationError(f"OTEL_TRACES_EXPORTER: unsupported exporter {name!r} "
                                     "(otlp, console or none)")
    if _provider is None and environ is None:
        trace.set_tracer_provider(provider)  # once per process, for instrumentations
    elif _provider is not None:
        _provider.shutdown()
    _provider = provider
    _tracer = provider.get_tracer("esb")
    ENABLED = True
    from esb.observability import clients

    clients.instrument(provider, env)  # psycopg and Redis spans, inside traced work only
    return True


def shutdown() -> None:
    """Flush and stop (tests; the SDK also flushes at interpreter exit)."""
    global ENABLED, _tracer, _provider
    if _provider is not None:
        from esb.observability import clients

        clients.uninstrument()
        _provider.shutdown()
    ENABLED, _tracer, _provider = False, trace.NoOpTracer(), None


def _console_exporter(path: str | None) -> Any:
    """Spans as JSON lines, to ``path`` (line-buffered, open for the process) or stdout."""
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    options: dict[str, Any] = {"formatter": lambda s: s.to_json(indent=None) + "\n"}
    if path:
        options["out"] = open(path, "a", buffering=1)  # noqa: SIM115
    return ConsoleSpanExporter(**options)


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span as hex, if there is a recording one."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


# --- propagation ---------------------------------------------------------------------------
def extract(carrier: Mapping[str, str]) -> Context:
    """The remote parent named by W3C headers (HTTP); an invalid one is ignored (W3C rule)."""
    return _PROPAGATOR.extract(carrier)


def extract_headers(headers: Iterable[tuple[str, bytes | None]]) -> Context:
    """The parent context of a Kafka record: its ``traceparent`` header (the previous hop),
    else its CloudEvents ``ce_traceparent`` (where the event entered)."""
    found: dict[str, str] = {}
    for key, value in headers:
        if key in _TRACE_HEADERS and value is not None:
            found[key] = value.decode(errors="replace")
    carrier = ({"traceparent": found["traceparent"], "tracestate": found.get("tracestate", "")}
               if "traceparent" in found else
               {"traceparent": found.get("ce_traceparent", ""),
                "tracestate": found.get("ce_tracestate", "")})
    return _PROPAGATOR.extract(carrier)


def kafka_trace_headers(headers: list[tuple[str, bytes]], span_: trace.Span
                        ) -> list[tuple[str, bytes]]:
    """``headers`` with ``traceparent``/``tracestate`` naming ``span_``, and the CloudEvents
    ``ce_traceparent``/``ce_tracestate`` added if the event did not carry them yet."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span_))
    out = [(k, v) for k, v in headers if k not in ("traceparent", "tracestate")]
    has_ce = any(k == "ce_traceparent" for k, _ in out)
    for name, value in carrier.items():
        out.append((name, value.encode()))
        if not has_ce:
            out.append((f"ce_{name}", value.encode()))
    return out


def stamp_current(headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """``headers`` naming the current span, if tracing is on and one is recording (a stage
    that emits inside its span: processors' forwards, matches and closed windows)."""
    if not ENABLED:
        return headers
    current = trace.get_current_span()
    if not current.get_span_context().is_valid:
        return headers
    return kafka_trace_headers(headers, current)


def current_carrier() -> dict[str, str]:
    """The current span's ``traceparent``/``tracestate`` as a small dict, for a hop whose
    message has no headers of its own (the event-sourcing command's JSON); empty when tracing
    is off or no span is recording."""
    if not ENABLED or not trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


def inject_http(headers: dict[str, str]) -> dict[str, str]:
    """Add the current span's ``traceparent`` (and ``tracestate``) to HTTP request headers."""
    _PROPAGATOR.inject(headers)
    return headers


def span(name: str, *, parent: Context | None = None, kind: SpanKind = SpanKind.INTERNAL,
         attributes: Mapping[str, Any] | None = None, links: Sequence[trace.Link] = ()
         ) -> Any:
    """A span as a context manager, current inside the block (callers test :data:`ENABLED`)."""
    return _tracer.start_as_current_span(name, context=parent, kind=kind,
                                         attributes=attributes, links=links)


def maybe_span(name: str, *, parent: Context | None = None, kind: SpanKind = SpanKind.INTERNAL,
               attributes: Mapping[str, Any] | None = None, links: Sequence[trace.Link] = ()
               ) -> Any:
    """:func:`span` when tracing is on, else a do-nothing context (for per-request paths)."""
    if not ENABLED:
        return nullcontext()
    return span(name, parent=parent, kind=kind, attributes=attributes, links=links)


def start_span(name: str, *, parent: Context | None = None, kind: SpanKind = SpanKind.INTERNAL,
               attributes: Mapping[str, Any] | None = None) -> trace.Span:
    """A span the caller ends (e.g. after a broker acknowledgement); not made current."""
    return _tracer.start_span(name, context=parent, kind=kind, attributes=attributes)


def hop(name: str, headers_in: Iterable[tuple[str, bytes | None]],
        headers_out: list[tuple[str, bytes]], attributes: Mapping[str, Any] | None = None
        ) -> list[tuple[str, bytes]]:
    """One stage that reads a record and produces it on (the ingress router): a CONSUMER span,
    child of the record's context, whose id the produced record carries as ``traceparent``."""
    span_ = _tracer.start_span(name, context=extract_headers(headers_in), kind=SpanKind.CONSUMER,
                               attributes=attributes)
    try:
        return kafka_trace_headers(headers_out, span_)
    finally:
        span_.end()


def record_spans(name: str, records: Iterable[Iterable[tuple[str, bytes | None]]],
                 attributes: Mapping[str, Any] | None = None) -> list[trace.Span]:
    """One CONSUMER span per record (each a child of that record's context), for a stage that
    handles a poll as a batch (the archive projection); end them with :func:`end_all`."""
    return [_tracer.start_span(name, context=extract_headers(headers), kind=SpanKind.CONSUMER,
                               attributes=attributes) for headers in records]


def end_all(spans: Iterable[trace.Span], error: BaseException | None = None) -> None:
    for span_ in spans:
        if error is not None:
            span_.record_exception(error)
            span_.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))
        span_.end()
