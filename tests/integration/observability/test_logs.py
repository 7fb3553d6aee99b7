"""JSON log lines from a real worker: every line parses, names its event, and holds no secret.

Plants a bearer token (JWT), a webhook signing secret, a secret in a webhook URL and a payload
value through the API and the Kafka ingress, drives the paths that log (a record PostgreSQL
refuses, failing deliveries, refused requests), then greps the worker's whole log."""

from __future__ import annotations

import json

import pytest

from esb import ids
from tests.integration.delivery_e2e.conftest import make_stream, subscribe
from tests.support import ce_headers, eventually, produce, unique

pytestmark = pytest.mark.integration


async def test_worker_logs_are_json_lines_with_context_and_no_planted_secret(
        observed, http, receiver, bootstrap) -> None:
    tenant = unique()
    api = observed.api(http, tenant)
    stream = await make_stream(api)
    planted_payload = "pv-" + ids.ulid()
    planted_url_secret = "us-" + ids.ulid()
    receiver.behaviour["down"] = "down"
    created = await subscribe(api, stream, receiver.url(f"down?token={planted_url_secret}"),
                              retry_policy={"max_retries": 1, "retry_delay_ms": 100,
                                            "exponential_backoff": False})
    webhook_secret = created["webhook_secret"]
    status, body = await api.post("/api/v1/events", {
        "event_type": "order.created", "source_capability": "orders", "aggregate_id": "o-1",
        "payload": {"card": planted_payload, "token": api.token}})
    assert status == 201, body
    # a bad token and a bad body are refused (and may be logged)
    bad = await http.post(observed.group.url(observed.port) + "/api/v1/events",
                          headers={"Authorization": f"Bearer {api.token}x"}, data=b"{}")
    assert bad.status == 401
    status, _ = await api.post("/api/v1/events", {"payload": planted_payload})
    assert status == 422
    # a record the archive refuses is replayed alone and logged with its event's context
    poisoned = ids.event_id()
    topic = f"{observed.group.prefix}.{tenant}.{stream}.normal"
    # (PostgreSQL quotes the JSON up to the NUL in its error: the planted value is in there)
    await produce(bootstrap, topic, [(b"a", b'{"v": "%s", "text": "\\u0000"}'
                                      % planted_payload.encode(),
                                      ce_headers(tenant, "order.created", source="orders",
                                                 event_id=poisoned, stream=stream))])

    def lines() -> list[dict]:
        return [json.loads(x) for x in observed.log().splitlines() if x.strip()]

    async def logged_poison():
        found = [x for x in lines() if x.get("event_id") == poisoned]
        return found or None
    (line, *_) = await eventually(logged_poison, timeout=60)
    assert line["tenant"] == tenant and line["stream"] == stream
    assert line["level"] == "error" and line["logger"] == "esb.consumer_kit"
    assert line["worker"].endswith(f":{observed.port}")

    async def dead_lettered():  # the failing webhook gave up: its attempts were logged
        _, listing = await api.get("/api/v1/dead-letters?stage=delivery")
        return listing["count"] >= 1 or None
    await eventually(dead_lettered, timeout=60)

    text = observed.log()
    assert all(set(x) >= {"time", "level", "logger", "worker", "message"} for x in lines())
    for secret in (api.token, webhook_secret, webhook_secret.removeprefix("whsec_"),
                   planted_payload, planted_url_secret):
        assert secret not in text
