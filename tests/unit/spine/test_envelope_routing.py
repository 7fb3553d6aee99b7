"""Pure spine logic: envelope mapping, routing decisions, catalog reducer, dead-letter headers."""

from __future__ import annotations

import json

import pytest
from cloudevents.v1.kafka import KafkaMessage, from_binary

from esb import ids
from esb.catalog import CatalogState
from esb.deadletter import Failure, dead_letter_headers, split_headers
from esb.envelope import EventIn, envelope_from_seed, envelopes_from_structured
from esb.errors import InvalidRequest, ValidationFailed
from esb.publish_decision import PayloadChecks, Rejected
from esb.routing import IngressRouter
from esb.streams import StreamDirectory
from esb.topics import Priority, TopicNames

TOPICS = TopicNames("esb")


def directory_with(*streams: dict) -> StreamDirectory:
    state = CatalogState()
    for s in streams:
        record = {"stream_id": f"str_{s['name']}", "stream_name": s["name"], "tenant_id": s["tenant"],
                  "source_capability": s.get("source"), "event_types": s.get("types", []),
                  "compression_type": s.get("codec", "NONE"),
                  "topics": {p.value: TOPICS.stream_lane(s["tenant"], s["name"], p)
                             for p in Priority}}
        state.apply(f"stream/{s['tenant']}/{s['name']}", {"op": "create", "data": record})
    return StreamDirectory(state, TOPICS)


def headers(**attrs: str) -> list[tuple[str, bytes]]:
    base = {"specversion": "1.0", "id": "e1", "source": "users", "type": "user.created",
            "tenantid": "acme"}
    base.update(attrs)
    return [(f"ce_{k}", v.encode()) for k, v in base.items() if v is not None]


def test_seed_event_maps_onto_cloudevents_and_the_sdk_reads_it() -> None:
    body = EventIn.model_validate({
        "event_type": "user.created", "source_capability": "user_management",
        "aggregate_id": "user_123", "aggregate_type": "User", "sequence_number": 42,
        "correlation_id": "cor_1", "priority": "high", "metadata": {"ip": "1.2.3.4"},
        "payload": {"user_name": "john.doe"}})
    env = envelope_from_seed(body, tenant="acme", user="u1")
    assert env.id.startswith("evt_") and env.priority is Priority.HIGH
    assert env.kafka_key() == b"user_123"
    message = KafkaMessage(headers=dict(env.kafka_headers()), key=env.kafka_key(), value=env.data)
    event = from_binary(message)
    assert event["type"] == "user.created" and event["source"] == "user_management"
    assert event["tenantid"] == "acme" and event["sequencenumber"] == "42"
    assert event.data == {"user_name": "john.doe"}
    seed = env.to_seed()
    assert seed["sequence_number"] == 42 and seed["metadata"] == {"ip": "1.2.3.4"}


def test_structured_event_validation() -> None:
    (env,) = envelopes_from_structured({"specversion": "1.0", "id": "x", "source": "s",
                                        "type": "t", "data": {"a": 1}})
    assert json.loads(env.data) == {"a": 1}
    with pytest.raises(InvalidRequest, match="missing required"):
        envelopes_from_structured({"specversion": "1.0", "id": "x"})
    with pytest.raises(InvalidRequest, match="specversion"):
        envelopes_from_structured({"specversion": "0.3", "id": "x", "source": "s", "type": "t"})
    with pytest.raises(InvalidRequest, match="lowercase"):
        envelopes_from_structured({"specversion": "1.0", "id": "x", "source": "s", "type": "t",
                                   "Bad_Name": 1})


def test_event_ids_sort_by_creation() -> None:
    made = [ids.event_id() for _ in range(2000)]
    assert made == sorted(made) and len(set(made)) == 2000
    assert abs(ids.ulid_time_ms(made[0]) - ids.ulid_time_ms(made[-1])) < 5000


def test_router_picks_stream_lane_key_and_codec() -> None:
    router = IngressRouter(directory_with({"tenant": "acme", "name": "users", "source": "users",
                                           "codec": "ZSTD"}), max_event_bytes=100)
    route = router.route(headers(priority="CRITICAL", aggregateid="u9"), b"ignored", b"{}",
                         tenant="acme")
    assert route.topic == "esb.acme.users.critical"
    assert route.key == b"u9" and route.codec == "zstd"
    assert ("ce_stream", b"users") in route.headers
    keyed = router.route(headers(), b"producer-key", b"{}", tenant="acme")
    assert keyed.key == b"producer-key" and keyed.topic == "esb.acme.users.normal"


def test_router_prefers_event_type_patterns_then_source() -> None:
    router = IngressRouter(directory_with(
        {"tenant": "acme", "name": "audit", "types": ["user.*"]},
        {"tenant": "acme", "name": "users", "source": "users"}), max_event_bytes=100)
    assert router.route(headers(), None, b"{}", tenant="acme").stream == "audit"
    assert router.route(headers(type="order.x"), None, b"{}", tenant="acme").stream == "users"
    assert router.route(headers(stream="users"), None, b"{}", tenant="acme").stream == "users"


@pytest.mark.parametrize(("hdrs", "value", "reason"), [
    ([("ce_id", b"\xff")], b"", "invalid_attribute"),
    (headers(type=None), b"{}", "missing_attribute"),
    (headers(priority="URGENT"), b"{}", "invalid_attribute"),
    (headers(specversion="0.3"), b"{}", "invalid_attribute"),
    (headers(tenantid="other"), b"{}", "tenant_mismatch"),
    (headers(stream="nope"), b"{}", "no_route"),
    (headers(), b"x" * 101, "too_large"),
    ([("content-type", b"application/cloudevents+json")], b"{bad", "undecodable"),
    # hostile shapes that once crashed the router (issue 10)
    ([("content-type", b"application/cloudevents+json")],
     json.dumps({"specversion": "1.0", "id": "1", "source": "users", "type": "user.created",
                 "datacontenttype": 5, "data": {}}).encode(), "undecodable"),
    ([("content-type", b"application/cloudevents+json")],
     json.dumps({"specversion": "1.0", "id": "1", "source": "users", "type": "user.created",
                 "data_base64": 5}).encode(), "undecodable"),
    ([("content-type", b"application/cloudevents+json")],
     b'{"specversion": "1.0", "id": "1", "source": "users", "type": "t", "data": '
     + b"[" * 100_000 + b"]" * 100_000 + b"}", "undecodable"),
    ([("content-type", b"application/cloudevents+json")],
     b'{"specversion": "1.0", "id": "1", "source": "users", "type": "t", "data": NaN}',
     "undecodable"),
    ([*headers(), ("ce_aggregateid", None)], b"{}", "invalid_attribute"),
    ([*headers(), ("content-type", None)], b"{}", "invalid_attribute"),
    (headers(id="a\x00b"), b"{}", "invalid_attribute"),
])
def test_router_rejects_with_a_reason(hdrs, value, reason) -> None:
    router = IngressRouter(directory_with({"tenant": "acme", "name": "users", "source": "users"}),
                           max_event_bytes=1 << 20 if len(value) > 1000 else 100)
    with pytest.raises(Rejected) as info:
        router.route(hdrs, None, value, tenant="acme")
    assert info.value.dead_letter_reason == reason


def test_router_takes_the_tenant_from_the_topic_not_the_header() -> None:
    router = IngressRouter(directory_with({"tenant": "acme", "name": "users", "source": "users"}),
                           max_event_bytes=100)
    route = router.route(headers(tenantid=None), None, b"{}", tenant="acme")
    assert route.tenant == "acme" and ("ce_tenantid", b"acme") in route.headers
    with pytest.raises(Rejected) as info:
        router.route(headers(), None, b"{}", tenant=None)
    assert info.value.reason == "missing_attribute"


def test_router_runs_payload_checks_and_rejects_as_schema_violation() -> None:
    checks = PayloadChecks()

    def must_have_name(tenant, hdrs, data, content_type) -> None:
        if b"name" not in data:
            raise ValidationFailed("bad", errors=[{"path": "$.name", "message": "required"}])

    checks.register(must_have_name)
    router = IngressRouter(directory_with({"tenant": "acme", "name": "users", "source": "users"}),
                           max_event_bytes=100, payload_checks=checks)
    assert router.route(headers(), None, b'{"name": 1}', tenant="acme").stream == "users"
    with pytest.raises(Rejected) as info:
        router.route(headers(), None, b"{}", tenant="acme")
    assert info.value.reason == "schema_violation" and "$.name" in info.value.error


def test_catalog_first_create_wins_and_outcomes_are_recorded() -> None:
    state = CatalogState()
    first = state.apply("stream/t/a", {"op": "create", "data": {"v": 1}, "request_id": "r1"})
    second = state.apply("stream/t/a", {"op": "create", "data": {"v": 2}, "request_id": "r2"})
    assert (first.status, second.status) == ("created", "exists")
    assert state.get("stream", "t", "a") == {"v": 1}
    assert state.outcomes["r2"].data == {"v": 1}
    state.apply("stream/t/a", None)  # tombstone
    assert state.get("stream", "t", "a") is None
    assert state.list("stream", "t") == []


def test_dead_letter_headers_keep_the_original_and_count_attempts() -> None:
    original = [("ce_id", b"e1"), ("x-custom", b"\x00\x01")]
    failure = Failure("no_route", "ingress", "boom", "esb.ingress", 2, 17, "esb.ingress", "acme")
    first = dead_letter_headers(original, failure, now="2026-01-01T00:00:00.000Z")
    kept, info = split_headers(first)
    assert kept == original
    assert info["attempts"] == "1" and info["origin-offset"] == "17"
    again = dead_letter_headers(first, Failure("no_route", "ingress", "boom2", "esb.ingress", 0, 99,
                                               "esb.ingress", "acme"),
                                now="2026-01-02T00:00:00.000Z")
    _, info2 = split_headers(again)
    assert info2["attempts"] == "2" and info2["origin-offset"] == "17"
    assert info2["first-failure"] == "2026-01-01T00:00:00.000Z"
    assert info2["last-failure"] == "2026-01-02T00:00:00.000Z"
