"""Webhook delivery end to end: signatures, CloudEvents encoding, filters, failures on cue."""

from __future__ import annotations

import json

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.integration.delivery_e2e.conftest import make_stream, publish, subscribe
from tests.support import eventually, unique

pytestmark = pytest.mark.integration


async def test_signed_binary_cloudevents_arrive_and_verify(dapi, receiver) -> None:
    api = dapi(unique())
    stream = await make_stream(api)
    created = await subscribe(api, stream, receiver.url("a"))
    secret = created["webhook_secret"]
    assert secret.startswith("whsec_")
    status, shown = await api.get(f"/api/v1/subscriptions/{created['subscription_id']}")
    assert status == 200 and "webhook_secret" not in json.dumps(shown)
    ids = await publish(api, 5)

    async def arrived():
        return len(set(receiver.ids("a")) & set(ids)) == 5 or None
    await eventually(arrived, timeout=60)
    verifier = Webhook(secret)
    for req in receiver.on("a"):
        verifier.verify(req.body, req.headers)  # raises on a bad signature
        headers = {k.lower(): v for k, v in req.headers.items()}
        event = from_http(HTTPMessage(headers, req.body), JSONFormat())
        assert event.get_id() == req.headers["webhook-id"]
        assert event.get_type() == "order.created"
        assert json.loads(req.body)["n"] in range(5)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 44).verify(receiver.on("a")[0].body, receiver.on("a")[0].headers)


async def test_failures_on_cue_end_delivered_or_dead_lettered_with_reason(dapi, receiver) -> None:
    tenant = unique()
    api = dapi(tenant)
    stream = await make_stream(api)
    receiver.behaviour.update(flaky="flaky", slow="delay:0.3", down="down", gone="gone",
                              throttle="throttle")
    # "gone" reads its own stream: the dead-letter index keys rows by origin record and stage,
    # so two subscriptions dead-lettering the same record would share one row (see report)
    gone_stream = await make_stream(api)
    subs = {path: await subscribe(api, gone_stream if path == "gone" else stream,
                                  receiver.url(path),
                                  retry_policy={"max_retries": 2 if path == "down" else 4,
                                                "retry_delay_ms": 200,
                                                "exponential_backoff": True})
            for path in ("flaky", "slow", "down", "gone", "throttle")}
    ids = await publish(api, 6, stream_id=stream)  # both streams share a source: name it
    await publish(api, 2, stream_id=gone_stream)

    async def delivered(path: str) -> bool:
        return set(receiver.ids(path)) >= set(ids) or None

    await eventually(lambda: delivered("flaky"), timeout=90)
    await eventually(lambda: delivered("slow"), timeout=90)
    # 429: the receiver asked for 2 s; after the first 429 it answers normally again
    await eventually(lambda: _hit(receiver, "throttle"), timeout=60)
    first_429 = min(at for p, at, st in receiver.hits if p == "throttle" and st == 429)
    receiver.behaviour["throttle"] = "ok"
    await eventually(lambda: delivered("throttle"), timeout=90)
    assert min(r.at for r in receiver.on("throttle")) >= first_429 + 2.0 - 0.05

    # 410: the subscription is disabled and the event waits in the dead-letter store
    gone_id = subs["gone"]["subscription_id"]

    async def disabled():
        _, st = await api.get(f"/api/v1/subscriptions/{gone_id}/status")
        return st if st["status"] == "disabled" else None
    status = await eventually(disabled, timeout=60)
    assert "410" in status["disabled_reason"]

    # down: every event ends in the dead-letter store with the reason and each attempt
    async def dead(reason: str, n: int):
        _, body = await api.get(f"/api/v1/dead-letters?stage=delivery&reason={reason}&limit=500")
        found = [d for d in body["dead_letters"] if d["event_id"] in ids or n == 1]
        return found if len(found) >= n else None
    down_dead = await eventually(lambda: dead("delivery_failed", 6), timeout=120)
    assert {d["event_id"] for d in down_dead} == set(ids)
    detail = json.loads(down_dead[0]["error"])
    assert detail["attempts_total"] == 3 and len(detail["attempts"]) == 3
    assert all(a["status_code"] == 503 for a in detail["attempts"])
    assert not receiver.on("down")
    gone_dead = await eventually(lambda: dead("subscription_disabled", 1), timeout=60)
    assert gone_dead[0]["destination"].endswith(f".{tenant}._redeliver")

    # redrive: the receiver is back, the dead letters are delivered with the same webhook-id
    receiver.behaviour["down"] = "ok"
    status, body = await api.post("/api/v1/dead-letters/redrive",
                                  {"stage": "delivery", "reason": "delivery_failed"})
    assert status == 200 and body["redriven"] == 6, body
    await eventually(lambda: delivered("down"), timeout=90)
    assert len(receiver.on("gone")) == 0


async def _hit(receiver, path: str) -> bool:
    return any(p == path and st == 429 for p, _, st in receiver.hits) or None


async def test_a_receiver_that_is_down_gets_every_event_once_it_is_back(dapi) -> None:
    from tests.integration.delivery_e2e.conftest import Receiver

    api = dapi(unique())
    stream = await make_stream(api)
    offline = Receiver()  # nothing listens on its port yet: connection refused
    created = await subscribe(api, stream, offline.url("x"),
                              retry_policy={"max_retries": 8, "retry_delay_ms": 1500,
                                            "exponential_backoff": True})
    sub_id = created["subscription_id"]
    ids = await publish(api, 6)

    async def failed():
        _, st = await api.get(f"/api/v1/subscriptions/{sub_id}/status")
        return st["events_failed"] >= 6 or None
    await eventually(failed, timeout=60)
    await offline.start()
    try:
        async def arrived():
            return set(offline.ids("x")) >= set(ids) or None
        await eventually(arrived, timeout=120)
        for req in offline.on("x"):
            Webhook(created["webhook_secret"]).verify(req.body, req.headers)
    finally:
        await offline.stop()


async def test_batches_filters_and_the_ssrf_gate(dapi, receiver, api_for) -> None:
    api = dapi(unique())
    stream = await make_stream(api)
    await subscribe(api, stream, receiver.url("batch"), batch_size=10, max_wait_time_ms=300,
                    event_type_patterns=["order.*"], filter_criteria={"aggregate_type": "Order"},
                    filter_expression="payload.n % 2 == 0")
    ids = await publish(api, 10)
    other = await publish(api, 3, "invoice.created")

    async def arrived():
        got = [e["id"] for r in receiver.on("batch") for e in json.loads(r.body)]
        return got if len(got) >= 5 else None
    got = await eventually(arrived, timeout=60)
    assert sorted(got) == sorted(ids[0::2])  # even n only; invoice.* never
    assert not set(got) & set(other)
    for req in receiver.on("batch"):
        assert req.headers["Content-Type"].startswith("application/cloudevents-batch+json")
    # the shared worker has no allow-list: loopback webhooks are refused at creation
    plain = api_for(unique())
    status, _ = await plain.post("/api/v1/streams", {"stream_name": "s1",
                                                     "source_capability": "orders"})
    status, body = await plain.post("/api/v1/subscriptions", {
        "subscription_name": "x", "stream_id": "s1", "consumer_group_id": "g",
        "webhook_url": "http://127.0.0.1:9/hook"})
    assert status == 422 and body["code"] == "unsafe_webhook_url", body
