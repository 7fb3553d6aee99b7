"""No record stops the bus (issue 10): each poison record that once crashed a worker, stopped a
lane or rewound a loop forever now ends as a dead letter with a reason, and the next good record
is served. Covers the ingress router, the archive projection, the dead-letter indexer and the
start-up of a worker whose topics already hold poison.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from esb import ids
from tests.support import (
    Api,
    ce_headers,
    consume_all,
    eventually,
    header,
    produce,
    unique,
)

pytestmark = pytest.mark.integration

STRUCTURED = [("content-type", b"application/cloudevents+json")]


def structured(tenant: str, **fields: object) -> bytes:
    body = {"specversion": "1.0", "id": ids.event_id(), "source": "shop", "type": "order.placed",
            "tenantid": tenant, **fields}
    return json.dumps(body).encode()


def ingress_poison(tenant: str, other: str) -> list[tuple[str, tuple]]:
    """(expected dead-letter reason, record) for every hostile shape the issue lists."""
    deep = (b'{"specversion": "1.0", "id": "deep", "source": "shop", "type": "order.placed", '
            b'"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    return [
        ("undecodable", (b"k", structured(tenant, datacontenttype=5, data={}), STRUCTURED)),
        ("undecodable", (b"k", structured(tenant, data_base64=5), STRUCTURED)),
        ("undecodable", (b"k", deep, STRUCTURED)),
        ("undecodable", (b"k", b'{"specversion": "1.0", "id": "n", "source": "shop", '
                               b'"type": "order.placed", "data": NaN}', STRUCTURED)),
        ("invalid_attribute", (b"k", b"{}", [*ce_headers(tenant, "order.placed", source="shop"),
                                             ("ce_aggregateid", None)])),
        ("invalid_attribute", (b"k", b"{}", ce_headers(tenant, "order.placed", source="shop",
                                                       event_id="nul\x00id"))),
        ("missing_attribute", (b"k", b"{}", [("ce_specversion", b"1.0"),
                                             ("esb-dlq-attempts", b"x"),
                                             ("esb-dlq-first-failure", b"not a time")])),
        ("tenant_mismatch", (b"k", b"{}", ce_headers(other, "order.placed", source="shop"))),
    ]


async def _stream(api: Api, source: str = "shop") -> dict:
    status, body = await api.post("/api/v1/streams", {"stream_name": unique("s"),
                                                      "source_capability": source})
    assert status == 201, body
    return body["stream"]


async def _dead_letters(api: Api, expect: int, **query: str) -> list[dict]:
    path = "/api/v1/dead-letters?limit=100" + "".join(f"&{k}={v}" for k, v in query.items())

    async def listed() -> list[dict]:
        status, body = await api.get(path)
        assert status == 200, body
        return body["dead_letters"] if len(body["dead_letters"]) >= expect else []

    return await eventually(listed, timeout=45)


async def test_every_ingress_poison_is_dead_lettered_and_the_next_record_is_routed(
        api_for, bus, bootstrap) -> None:
    group, _ = bus
    tenant, other = unique(), unique()
    api = api_for(tenant)
    stream = await _stream(api)
    await _stream(api_for(other))  # the other tenant exists too: still not a way in
    poison = ingress_poison(tenant, other)
    good_id = ids.event_id()
    await produce(bootstrap, f"{group.settings.topic_prefix}.{tenant}.ingress",
                  [record for _, record in poison]
                  + [(b"g", b'{"ok": true}', ce_headers(tenant, "order.placed", source="shop",
                                                         event_id=good_id))])

    (routed,) = await consume_all(bootstrap, stream["topics"].values(), expect=1, timeout=45)
    assert header(routed, "ce_id") == good_id
    assert header(routed, "ce_tenantid") == tenant

    letters = await _dead_letters(api, len(poison), stage="ingress")
    assert sorted(d["reason"] for d in letters) == sorted(reason for reason, _ in poison)
    forged = next(d for d in letters if d["reason"] == "missing_attribute")
    assert forged["attempts"] == 1  # the forged esb-dlq-attempts: x was not believed
    # the mismatching record went to the topic owner's dead letters, not to the claimed tenant
    assert (await api_for(other).get("/api/v1/dead-letters?stage=ingress"))[1]["count"] == 0


async def test_projection_sets_aside_what_postgres_refuses_and_archives_the_rest(
        api_for, bus, bootstrap) -> None:
    tenant = unique()
    api = api_for(tenant)
    stream = await _stream(api)
    lane = stream["topics"]["NORMAL"]
    nul_payload, null_header, good = ids.event_id(), ids.event_id(), ids.event_id()
    # written straight to the stream topic, as a producer with an ACL on the tenant prefix can
    await produce(bootstrap, lane, [
        (b"a", b'{"text": "\\u0000"}', ce_headers(tenant, "order.placed", source="shop",
                                                  event_id=nul_payload)),
        (b"a", b"{}", [*ce_headers(tenant, "order.placed", source="shop", event_id=null_header),
                       ("ce_subject", None)]),
        (b"a", b'{"n": 1}', ce_headers(tenant, "order.placed", source="shop", event_id=good)),
    ])

    async def archived() -> bool:
        return (await api.get(f"/api/v1/events/{good}"))[0] == 200

    await eventually(archived, timeout=60)
    letters = await _dead_letters(api, 2, stage="projection")
    assert {d["event_id"] for d in letters} >= {nul_payload, null_header}
    assert all(d["reason"] == "archive_rejected" and d["error"] for d in letters)


async def test_http_publish_refuses_control_characters_and_serves_the_next(api_for, bus) -> None:
    api = api_for(unique())
    await _stream(api)
    event = {"event_type": "order.placed", "source_capability": "shop", "payload": {}}
    status, body = await api.post("/api/v1/events", {**event, "event_id": "a\x00b"})
    assert status == 400 and "NUL" in body["detail"], body
    status, body = await api.post("/api/v1/events", {**event, "aggregate_id": "x\x1by"})
    assert status == 422, body
    status, body = await api.post("/api/v1/events", event)
    assert status == 201, body


async def test_a_worker_starts_and_serves_with_poison_already_in_its_topics(
        worker_group, http, bootstrap) -> None:
    port = worker_group.start()
    tenant = unique()
    api = Api(http, worker_group.url(port), worker_group.token(tenant))
    stream = await _stream(api)
    worker_group.stop(port)

    prefix = worker_group.settings.topic_prefix
    good_routed, good_archived = ids.event_id(), ids.event_id()
    await produce(bootstrap, f"{prefix}.{tenant}.ingress",
                  [record for _, record in ingress_poison(tenant, unique())]
                  + [(b"g", b"{}", ce_headers(tenant, "order.placed", source="shop",
                                              event_id=good_routed))])
    await produce(bootstrap, stream["topics"]["HIGH"], [
        (b"a", b'{"text": "\\u0000"}', ce_headers(tenant, "order.placed", source="shop")),
        (b"a", b"{}", ce_headers(tenant, "order.placed", source="shop", event_id=good_archived)),
    ])

    port = worker_group.start()  # healthy despite the poison waiting for it
    api = Api(http, worker_group.url(port), worker_group.token(tenant))

    async def served() -> bool:
        got = [(await api.get(f"/api/v1/events/{i}"))[0] for i in (good_routed, good_archived)]
        return got == [200, 200]

    await eventually(served, timeout=90)
    await asyncio.sleep(1.0)
    assert worker_group.procs[port].poll() is None, worker_group.log(port)[-3000:]
    async with http.get(worker_group.url(port) + "/health") as resp:
        assert resp.status == 200 and (await resp.json())["status"] == "ok"


async def test_a_processor_dead_letters_poison_inputs_and_processes_the_next(
        api_for, bus, bootstrap) -> None:
    tenant = unique()
    api = api_for(tenant)
    source, target = await _stream(api), await _stream(api)
    status, created = await api.post("/api/v1/stream-processors", {
        "processor_name": unique("filter"), "processor_type": "FILTER",
        "source_stream_id": source["stream_id"], "target_stream_id": target["stream_id"],
        "processing_logic": {"filter_expression": "payload.amount > 10"},
        "error_handling_strategy": "DEAD_LETTER"})
    assert status == 201, created
    good = ids.event_id()
    await produce(bootstrap, source["topics"]["NORMAL"], [
        (b"a", b"{}", [*ce_headers(tenant, "order.placed", source="shop"), ("ce_subject", None)]),
        (b"a", b"[" * 5000 + b"]" * 5000, ce_headers(tenant, "order.placed", source="shop")),
        (b"a", b'{"amount": 11}', ce_headers(tenant, "order.placed", source="shop",
                                             event_id=good)),
    ])
    status, _ = await api.post(f"/api/v1/stream-processors/{created['processor_id']}/start")
    assert status == 200
    (passed,) = await consume_all(bootstrap, target["topics"].values(), expect=1, timeout=45)
    assert header(passed, "ce_id") == good
    letters = await _dead_letters(api, 2, stage="processor")
    assert len(letters) == 2 and all(d["error"] for d in letters)
