"""Structured log lines: JSON fields, the task's context, trace ids, and redaction."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest

from esb.observability import context, tracing
from esb.observability.logging import build_formatter, redact

JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ0ZXN0ZXIiLCJ0ZW5hbnQiOiJhY21lIn0."
       "c2lnbmF0dXJlLXZhbHVlLW5vdC1yZWFs")


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(build_formatter("json", "host:8080"))
    logger = logging.getLogger("esb.test.observability")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_time_level_logger_worker(captured) -> None:
    logger, stream = captured
    logger.warning("disk at %d%%", 93)
    (line,) = lines(stream)
    assert line["message"] == "disk at 93%"
    assert line["level"] == "warning"
    assert line["logger"] == "esb.test.observability"
    assert line["worker"] == "host:8080"
    assert str(line["time"]).endswith("Z")
    assert "trace_id" not in line  # tracing is off


def test_context_fields_are_those_of_the_task_that_logs(captured) -> None:
    logger, stream = captured

    async def work(tenant: str, event_id: str) -> None:
        context.bind(tenant=tenant, event_id=event_id, correlation_id=None)
        await asyncio.sleep(0)
        logger.info("handled")

    async def both() -> None:
        await asyncio.gather(work("acme", "evt_1"), work("globex", "evt_2"))

    asyncio.run(both())
    logger.info("outside")
    got = {(d.get("tenant"), d.get("event_id")) for d in lines(stream)}
    assert got == {("acme", "evt_1"), ("globex", "evt_2"), (None, None)}
    assert all("correlation_id" not in d for d in lines(stream))


def test_bound_restores_the_previous_context() -> None:
    with context.bound(tenant="acme"):
        with context.bound(stream="orders"):
            assert dict(context.current()) == {"tenant": "acme", "stream": "orders"}
        assert dict(context.current()) == {"tenant": "acme"}
    assert dict(context.current()) == {}


def test_fields_from_cloudevents_headers_are_escaped_not_raw() -> None:
    fields = context.from_headers([("ce_id", b"evt\n1"), ("ce_tenantid", b"acme"),
                                   ("ce_type", b"x"), ("ce_stream", None)])
    assert fields == {"event_id": "evt\\n1", "tenant": "acme"}


@pytest.mark.parametrize("secret, kept", [
    (f"Authorization: Bearer {JWT}", "Authorization: Bearer ***"),
    (f"token {JWT} refused", "token <jwt> refused"),
    ("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw rotated", "secret whsec_*** rotated"),
    ("connect postgresql://esb:hunter2@db:5432/esb failed", "postgresql://***@db:5432/esb"),
    ("password=hunter2 user=esb", "password=*** user=esb"),
])
def test_redaction_removes_credentials(secret: str, kept: str) -> None:
    out = redact(secret)
    assert kept in out
    for needle in (JWT, "hunter2", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"):
        assert needle not in out


def test_a_secret_in_a_message_or_a_traceback_never_reaches_the_line(captured) -> None:
    logger, stream = captured
    logger.info("caller sent %s", f"Bearer {JWT}")
    try:
        raise ValueError(f"rejected whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw for {JWT}")
    except ValueError:
        logger.exception("delivery setup failed")
    text = stream.getvalue()
    assert JWT not in text and "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" not in text
    assert "ValueError" in lines(stream)[1]["exception"]


def test_a_line_inside_a_span_names_its_trace_and_span(captured) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    logger, stream = captured
    exporter = InMemorySpanExporter()
    assert tracing.configure(service_instance="t", exporters=[exporter], environ={})
    try:
        with tracing.span("work") as span:
            logger.info("inside")
        ctx = span.get_span_context()
    finally:
        tracing.shutdown()
    (line,) = lines(stream)
    assert line["trace_id"] == f"{ctx.trace_id:032x}"
    assert line["span_id"] == f"{ctx.span_id:016x}"


def test_console_format_is_one_readable_line() -> None:
    record = logging.LogRecord("esb.x", logging.INFO, __file__, 1, "hello %s", ("acme",), None)
    with context.bound(tenant="acme"):
        line = build_formatter("console", "h:1").format(record)
    assert "hello acme" in line and "tenant=acme" in line and "\n" not in line


def test_values_postgresql_quotes_in_its_errors_are_redacted(captured) -> None:
    logger, stream = captured
    logger.warning("%s", 'UntranslatableCharacter: unsupported Unicode escape sequence\n'
                   'DETAIL:  \\u0000 cannot be converted to text.\n'
                   'CONTEXT:  JSON data, line 1: {"card": "4111-1111", "text": "\\u0000...\n'
                   "unnamed portal parameter $17 = '4111-1111'")
    logger.warning('duplicate key value violates unique constraint\n'
                   'DETAIL:  Key (email)=(jane@example.com) already exists.\n'
                   'DETAIL:  Failing row contains (1, jane@example.com, null).')
    text = stream.getvalue()
    assert "4111-1111" not in text and "jane@example.com" not in text
    assert "UntranslatableCharacter" in text and "JSON data, line 1: <redacted>" in text


def test_redaction_never_breaks_the_json_line(captured) -> None:
    logger, stream = captured
    logger.info("login password=hunter2")
    logger.info("refused: JSON data, line 1: {\"a\": 1}")
    logger.info("header Bearer abc.def")
    parsed = lines(stream)  # each line still parses
    assert [p["message"] for p in parsed] == ["login password=***",
                                              "refused: JSON data, line 1: <redacted>",
                                              "header Bearer ***"]


def test_a_records_trace_id_comes_from_its_headers_when_valid() -> None:
    w3c = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ce = b"00-5bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b7-01"
    assert context.from_headers([("ce_traceparent", ce)])["trace_id"].startswith("5bf9")
    assert context.from_headers([("traceparent", w3c), ("ce_traceparent", ce)]) == {
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}
    assert context.from_headers([("ce_traceparent", b"junk\n")]) == {}


def test_the_worker_hands_faust_a_logging_config_from_esb_log_level_and_format(tmp_path) -> None:
    from esb.app import faust_settings
    from esb.settings import Settings

    conf = faust_settings(Settings(data_dir=tmp_path, log_level="warning", log_format="json",
                                   web_port=8123))["logging_config"]
    assert conf["root"]["level"] == logging.WARNING
    assert conf["disable_existing_loggers"] is False  # loggers made at import keep working
    formatter = logging.config.DictConfigurator(conf).configure_custom(
        dict(conf["formatters"]["esb"]))
    line = json.loads(formatter.format(logging.LogRecord("faust.worker", logging.WARNING,
                                                         __file__, 1, "ready", (), None)))
    assert line["worker"].endswith(":8123") and line["message"] == "ready"
