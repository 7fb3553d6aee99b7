"""One trace from the HTTP publish (or a Kafka producer) to the webhook request and its retries."""

from __future__ import annotations

import pytest

from esb.observability.tracecontext import trace_id_of
from tests.integration.delivery_e2e.conftest import make_stream, subscribe
from tests.support import ce_headers, eventually, produce, unique, wait_router_assigned

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def _in_trace(spans: list[dict], trace_id: str) -> list[dict]:
    return [s for s in spans if s["context"]["trace_id"] == "0x" + trace_id]


async def test_one_trace_from_http_publish_through_retries_to_the_webhook(observed, http,
                                                                          receiver) -> None:
    api = observed.api(http, unique())
    stream = await make_stream(api)
    receiver.behaviour["flaky"] = "flaky"  # the first two tries fail: two retries
    await subscribe(api, stream, receiver.url("flaky"),
                    retry_policy={"max_retries": 4, "retry_delay_ms": 200,
                                  "exponential_backoff": False})
    status, body = await api.post(
        "/api/v1/events", {"event_type": "order.created", "source_capability": "orders",
                           "aggregate_id": "o-1", "payload": {"n": 1}},
        headers={"traceparent": CALLER})
    assert status == 201, body

    async def delivered():
        return [r for r in receiver.on("flaky")
                if r.headers.get("webhook-id") == body["event_id"]] or None
    (request,) = await eventually(delivered, timeout=60)
    # the receiver continues the caller's trace: W3C header and the CloudEvents extension
    assert trace_id_of(request.headers["traceparent"]) == TRACE_ID
    assert trace_id_of(request.headers["ce-traceparent"]) == TRACE_ID

    async def traced():
        spans = _in_trace(observed.spans(), TRACE_ID)
        names = [s["name"] for s in spans]
        return spans if names.count("esb.deliver") >= 3 and "esb.archive" in names else None
    spans = await eventually(traced, timeout=30)
    by_id = {s["context"]["span_id"]: s for s in spans}
    server = next(s for s in spans if s["name"] == "POST /api/v1/events")
    assert server["parent_id"] == "0x00f067aa0ba902b7"  # the caller's span
    publish = next(s for s in spans if s["name"] == "esb.publish")
    assert publish["parent_id"] == server["context"]["span_id"]
    attempts = sorted((s for s in spans if s["name"] == "esb.deliver"),
                      key=lambda s: s["attributes"]["esb.delivery.attempt"])
    assert [s["attributes"]["esb.delivery.attempt"] for s in attempts][:3] == [1, 2, 3]
    assert all(by_id[s["parent_id"]]["name"] == "esb.publish" for s in attempts)
    assert [s["attributes"]["esb.delivery.outcome"] for s in attempts][:3] == [
        "retry", "retry", "success"]
    # the webhook request's traceparent names the attempt that succeeded
    assert request.headers["traceparent"].split("-")[2] == attempts[2]["context"]["span_id"][2:]
    archive = next(s for s in spans if s["name"] == "esb.archive")
    assert archive["parent_id"] == publish["context"]["span_id"]


async def test_a_kafka_producers_ce_traceparent_reaches_the_webhook(observed, http, receiver,
                                                                     bootstrap) -> None:
    tenant = unique()
    api = observed.api(http, tenant)
    stream = await make_stream(api)
    await subscribe(api, stream, receiver.url("k"))
    group = observed.group
    await wait_router_assigned(http, group.url(observed.port), 1,
                               group.token(tenant, roles=["operator"]))
    trace_id = "5bf92f3577b34da6a3ce929d0e0e4737"
    event_id = unique("evt")
    headers = ce_headers(tenant, "order.created", event_id=event_id, source="orders",
                         stream=stream, traceparent=f"00-{trace_id}-10f067aa0ba902b7-01")
    topic = f"{group.prefix}.{tenant}.ingress"
    await produce(bootstrap, topic, [(b"k", b'{"n": 1}', headers)])

    async def delivered():
        return [r for r in receiver.on("k") if r.headers.get("webhook-id") == event_id] or None
    (request,) = await eventually(delivered, timeout=60)
    assert trace_id_of(request.headers["traceparent"]) == trace_id
    # the extension keeps where the event entered; the W3C header names the delivery attempt
    assert request.headers["ce-traceparent"] == f"00-{trace_id}-10f067aa0ba902b7-01"

    async def routed():
        names = {s["name"] for s in _in_trace(observed.spans(), trace_id)}
        return names if {"esb.route", "esb.deliver"} <= names else None
    await eventually(routed, timeout=30)


async def test_a_hostile_ce_traceparent_is_refused_over_http(observed, http) -> None:
    api = observed.api(http, unique())
    stream = await make_stream(api)
    status, body = await api.request(
        "POST", "/api/v1/events", data=b'{"n": 1}',
        headers={"ce-specversion": "1.0", "ce-id": "e1", "ce-source": "orders",
                 "ce-type": "order.created", "ce-stream": stream,
                 "ce-traceparent": "00-" + "z" * 32 + "-" + "0" * 16 + "-01",
                 "content-type": "application/json"})
    assert status == 400, body
    assert body["code"] and "traceparent" in body["detail"]


async def test_an_event_sourcing_append_continues_the_callers_trace(observed, http) -> None:
    """HTTP append → the owner agent's decision → the accepted event's publish → the archive."""
    api = observed.api(http, unique())
    trace_id = "6bf92f3577b34da6a3ce929d0e0e4738"
    status, body = await api.post(
        "/api/v1/event-sourcing/append",
        {"aggregate_id": unique("agg"), "aggregate_type": "Order", "event_type": "order.created",
         "event_data": {"n": 1}, "expected_version": "no_stream"},
        headers={"traceparent": f"00-{trace_id}-20f067aa0ba902b7-01"})
    assert status == 201, body

    async def traced():
        spans = _in_trace(observed.spans(), trace_id)
        names = [s["name"] for s in spans]
        return spans if {"esb.sourcing.decide", "esb.publish", "esb.archive"} <= set(names) \
            else None
    spans = await eventually(traced, timeout=30)
    by_id = {s["context"]["span_id"]: s for s in spans}
    server = next(s for s in spans if s["name"] == "POST /api/v1/event-sourcing/append")
    decide = next(s for s in spans if s["name"] == "esb.sourcing.decide")
    assert decide["parent_id"] == server["context"]["span_id"]
    assert decide["attributes"]["esb.sourcing.outcome"] == "accepted"
    publish = next(s for s in spans if s["name"] == "esb.publish")
    assert publish["parent_id"] == decide["context"]["span_id"]
    archive = next(s for s in spans if s["name"] == "esb.archive")
    assert by_id[archive["parent_id"]]["name"] == "esb.publish"


async def test_a_dead_letter_shows_up_in_the_trace_of_its_publish(observed, http,
                                                                  receiver) -> None:
    api = observed.api(http, unique())
    stream = await make_stream(api)
    receiver.behaviour["refuses"] = "down"  # 503 every time, no retries: a delivery dead letter
    await subscribe(api, stream, receiver.url("refuses"),
                    retry_policy={"max_retries": 0, "retry_delay_ms": 100,
                                  "exponential_backoff": False})
    trace_id = "7bf92f3577b34da6a3ce929d0e0e4739"
    status, body = await api.post(
        "/api/v1/events", {"event_type": "order.created", "source_capability": "orders",
                           "aggregate_id": "o-2", "payload": {"n": 2}},
        headers={"traceparent": f"00-{trace_id}-30f067aa0ba902b7-01"})
    assert status == 201, body

    async def traced():
        spans = _in_trace(observed.spans(), trace_id)
        return spans if any(s["name"] == "esb.deadletter" for s in spans) else None
    spans = await eventually(traced, timeout=60)
    by_id = {s["context"]["span_id"]: s for s in spans}
    dead = next(s for s in spans if s["name"] == "esb.deadletter")
    assert dead["attributes"]["esb.dlq.stage"] == "delivery"
    # the failed record's traceparent named its publish: the dead letter is its child and link
    assert by_id[dead["parent_id"]]["name"] == "esb.publish"
    assert dead["links"][0]["context"]["span_id"] == dead["parent_id"]


async def test_a_database_query_of_a_traced_request_is_its_child_span(observed, http) -> None:
    api = observed.api(http, unique())
    trace_id = "8bf92f3577b34da6a3ce929d0e0e473a"
    status, body = await api.get("/api/v1/database/health",
                                 headers={"traceparent": f"00-{trace_id}-40f067aa0ba902b7-01"})
    assert status == 200, body

    async def traced():
        spans = _in_trace(observed.spans(), trace_id)
        return spans if any(s["attributes"].get("db.system") == "postgresql"
                            for s in spans) else None
    spans = await eventually(traced, timeout=20)
    server = next(s for s in spans if s["name"] == "GET /api/v1/database/health")
    query = next(s for s in spans if s["attributes"].get("db.system") == "postgresql")
    assert query["parent_id"] == server["context"]["span_id"]
    assert query["kind"] == "SpanKind.CLIENT"
