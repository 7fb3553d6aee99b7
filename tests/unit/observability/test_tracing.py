"""Trace context on Kafka headers, webhooks and the CloudEvents extension; off by default."""

from __future__ import annotations

import pytest

from esb.envelope import attributes_from_kafka_headers, envelope_from_attributes
from esb.errors import InvalidRequest
from esb.observability import tracing
from esb.observability.tracecontext import check_trace_attribute, trace_id_of

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize("environ", [{}, {"OTEL_TRACES_EXPORTER": "none"},
                                     {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}])
def test_tracing_is_off_unless_an_exporter_is_configured(environ: dict[str, str]) -> None:
    assert tracing.configure(service_instance="t", environ=environ) is False
    assert tracing.ENABLED is False


def test_an_unknown_exporter_is_a_configuration_error() -> None:
    from esb.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="OTEL_TRACES_EXPORTER"):
        tracing.configure(service_instance="t", environ={"OTEL_TRACES_EXPORTER": "zipkin"})
    assert tracing.ENABLED is False


def test_a_hop_continues_the_trace_and_stamps_both_header_forms(spans) -> None:
    out = tracing.hop("esb.route", [("traceparent", PARENT.encode())],
                      [("ce_id", b"e1"), ("traceparent", PARENT.encode())])
    (span,) = spans.get_finished_spans()
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None and f"{span.parent.span_id:016x}" == PARENT.split("-")[2]
    headers = dict(out)
    assert [k for k, _ in out].count("traceparent") == 1
    mine = f"00-{TRACE_ID}-{span.context.span_id:016x}-01"
    assert headers["traceparent"].decode() == mine
    assert headers["ce_traceparent"].decode() == mine  # first hop that sets the extension


def test_the_cloudevents_attribute_keeps_where_the_event_entered(spans) -> None:
    entered = "00-0af7651916cd43dd8448eb211c80319c-1111111111111111-01"
    out = tracing.hop("esb.route", [("ce_traceparent", entered.encode())],
                      [("ce_traceparent", entered.encode())])
    (span,) = spans.get_finished_spans()
    assert f"{span.parent.span_id:016x}" == "1111111111111111"  # parent from the extension
    assert dict(out)["ce_traceparent"].decode() == entered
    assert dict(out)["traceparent"].decode() != entered


def test_a_hostile_traceparent_header_starts_a_new_trace_never_fails(spans) -> None:
    tracing.hop("esb.route", [("traceparent", b"\xff\x00junk"), ("tracestate", None)], [])
    (span,) = spans.get_finished_spans()
    assert span.parent is None and f"{span.context.trace_id:032x}" != TRACE_ID


def test_webhook_headers_carry_the_current_span(spans) -> None:
    with tracing.span("esb.deliver", parent=tracing.extract({"traceparent": PARENT})) as span:
        headers = tracing.inject_http({"content-type": "application/json"})
    assert trace_id_of(headers["traceparent"]) == TRACE_ID
    assert headers["traceparent"].split("-")[2] == f"{span.get_span_context().span_id:016x}"


def test_record_spans_are_children_of_each_record(spans) -> None:
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    started = tracing.record_spans("esb.archive", [[("traceparent", PARENT.encode())],
                                                   [("ce_traceparent", other.encode())]])
    tracing.end_all(started, ValueError("db refused"))
    finished = spans.get_finished_spans()
    assert {f"{s.context.trace_id:032x}" for s in finished} == {TRACE_ID, other.split("-")[1]}
    assert all(not s.status.is_ok for s in finished)


@pytest.mark.parametrize("value", [
    PARENT, "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future",
])
def test_valid_traceparents(value: str) -> None:
    assert check_trace_attribute("traceparent", value) is None


@pytest.mark.parametrize("value", [
    "", "garbage", PARENT.upper(), PARENT + "-x", "ff" + PARENT[2:],
    "00-00000000000000000000000000000000-b7ad6b7169203331-01",
    "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
])
def test_invalid_traceparents(value: str) -> None:
    assert check_trace_attribute("traceparent", value) is not None
    assert trace_id_of(value) is None


def test_tracestate_rules() -> None:
    assert check_trace_attribute("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7") is None
    assert check_trace_attribute("tracestate", "a b") is not None
    assert check_trace_attribute("tracestate", ",".join(f"k{i}=v" for i in range(33))) is not None
    assert check_trace_attribute("tracestate", "k=" + "v" * 600) is not None


def test_ce_traceparent_survives_the_kafka_codec_and_hostile_values_are_refused() -> None:
    attrs, _ = attributes_from_kafka_headers([("ce_traceparent", PARENT.encode()),
                                              ("ce_tracestate", b"congo=t61rcWkgMzE")])
    assert attrs["traceparent"] == PARENT and attrs["tracestate"] == "congo=t61rcWkgMzE"
    for hostile in (b"00-zz-zz-zz", b"\x00" * 55, ("00-" + "a" * 5000).encode()):
        with pytest.raises(InvalidRequest) as err:
            attributes_from_kafka_headers([("ce_traceparent", hostile)])
        assert err.value.http_status == 400


def test_traceparent_attribute_over_http_is_validated() -> None:
    base = {"specversion": "1.0", "id": "e1", "source": "s", "type": "t"}
    env = envelope_from_attributes({**base, "traceparent": PARENT}, b"{}", None)
    assert ("ce_traceparent", PARENT.encode()) in env.kafka_headers()
    with pytest.raises(InvalidRequest, match="traceparent"):
        envelope_from_attributes({**base, "traceparent": "not-a-trace"}, b"{}", None)


class _Request:
    method = "POST"

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


class _Response:
    status = 201


async def test_the_server_span_continues_the_callers_trace_and_skips_probes(spans) -> None:
    from esb.observability.web import traced

    async def handler(_request: object) -> _Response:
        return _Response()

    await traced(_Request({"traceparent": PARENT}), handler, "/api/v1/events", "acme")
    await traced(_Request({"traceparent": PARENT}), handler, "/health", None)
    (span,) = spans.get_finished_spans()
    assert span.name == "POST /api/v1/events" and span.kind is tracing.SpanKind.SERVER
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.attributes["esb.tenant"] == "acme"
    assert span.attributes["http.response.status_code"] == 201


def test_a_detached_context_forgets_the_request_it_was_started_from(spans) -> None:
    from esb.observability import context

    def inside() -> tuple[dict[str, str], object]:
        return dict(context.current()), tracing.current_ids()

    with context.bound(tenant="acme"), tracing.span("POST /api/v1/subscriptions"):
        assert inside()[0] == {"tenant": "acme"} and inside()[1] is not None
        assert context.detached().run(inside) == ({}, None)


def test_the_console_exporter_writes_one_json_span_per_line(tmp_path) -> None:
    import json

    path = tmp_path / "spans.jsonl"
    assert tracing.configure(service_instance="h:1", traces_file=str(path),
                             environ={"OTEL_TRACES_EXPORTER": "console"})
    try:
        with tracing.span("a"), tracing.span("b"):
            pass
    finally:
        tracing.shutdown()
    spans = [json.loads(line) for line in path.read_text().splitlines()]
    assert [s["name"] for s in spans] == ["b", "a"]
    assert spans[0]["resource"]["attributes"]["service.instance.id"] == "h:1"
