"""Quotas per tenant against the real broker, PostgreSQL and Redis (ADR 0016).

- HTTP publishing over the tenant's rate is a 429 with ``Retry-After`` and code
  ``rate_limited``; two replicas spend one budget through Redis; without Redis each replica's
  in-process limiter applies;
- on the Kafka ingress a tenant over its rate has its partitions held, then resumed: every record
  arrives, none is dead-lettered, and another tenant's records flow meanwhile;
- count quotas answer 409 ``quota_exceeded`` naming the limit; only operators/admins change them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import pytest

from tests.support import (
    Api,
    WorkerGroup,
    ce_headers,
    consume_all,
    eventually,
    header,
    produce,
    unique,
)

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

V1 = "/api/v1"
EVENT = {"event_type": "q.created", "source_capability": "quota_src", "payload": {"n": 1}}


@pytest.fixture(scope="module")
def redis_pair(broker_url: str, database_url: str, redis_url: str,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WorkerGroup, int, int]]:
    """Two replicas of one bus sharing Redis, started and stopped side by side (each waits
    for its group join; in parallel the fixture costs about one of them)."""
    group = WorkerGroup(broker_url, database_url, tmp_path_factory.mktemp("quotas"),
                        extra_env={"ESB_REDIS_URL": redis_url})
    with ThreadPoolExecutor(2) as pool:
        try:
            a, b = pool.map(lambda _: group.start(), range(2))
            yield group, a, b
        finally:
            list(pool.map(group.stop, list(group.procs)))


def operator(session: aiohttp.ClientSession, group: WorkerGroup, port: int, tenant: str) -> Api:
    """The tenant's admin (creates streams, publishes) and the platform's operator (sets quotas)."""
    return Api(session, group.url(port), group.token(tenant, roles=["admin", "operator"]))


async def put_quotas(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = await api.request("PUT", f"{V1}/quotas", json_body=body)
    assert status == 200, answer
    return answer  # type: ignore[no-any-return]


async def stream_for(api: Api, source: str = "quota_src", **extra: Any) -> dict[str, Any]:
    status, body = await api.post(f"{V1}/streams", {"stream_name": unique("qs"),
                                                    "source_capability": source, **extra})
    assert status == 201, body
    return body["stream"]  # type: ignore[no-any-return]


async def publish_status(session: aiohttp.ClientSession, api: Api) -> tuple[int, Any, str | None]:
    async with session.post(api.base + f"{V1}/events", json=EVENT, headers=api.headers()) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers.get("Retry-After")


async def test_replicas_share_the_publish_budget_through_redis(redis_pair, http) -> None:
    group, a, b = redis_pair
    tenant = unique("qt")
    on_a, on_b = operator(http, group, a, tenant), operator(http, group, b, tenant)
    await stream_for(on_a)
    # 4 events at once, then one every 4 s: the test never waits for a refill
    await put_quotas(on_a, {"publish_events_per_s": 0.25, "burst_s": 16})

    async def b_sees_it() -> bool:
        status, body = await on_b.get(f"{V1}/quotas")
        return status == 200 and body["limits"]["publish_events_per_s"] == 0.25

    await eventually(b_sees_it, timeout=10)
    for api in (on_a, on_a, on_b, on_b):
        status, body, _ = await publish_status(http, api)
        assert status == 201, body
    # B has published only 2 itself: refused because A's 2 came out of the same budget
    status, body, retry_after = await publish_status(http, on_b)
    assert status == 429, body
    assert body["code"] == "rate_limited" and body["status"] == 429
    assert retry_after is not None and 1 <= int(retry_after) <= 5
    status, _, _ = await publish_status(http, on_a)
    assert status == 429
    # another tenant on the same replicas is not affected
    other = operator(http, group, b, unique("qo"))
    await stream_for(other)
    status, body, _ = await publish_status(http, other)
    assert status == 201, body


async def test_without_redis_the_in_process_limiter_applies(bus, http) -> None:
    group, port = bus
    tenant = unique("qt")
    api = operator(http, group, port, tenant)
    await stream_for(api)
    await put_quotas(api, {"publish_events_per_s": 0.25, "burst_s": 8})
    batch = {"events": [EVENT, EVENT]}
    status, body = await api.post(f"{V1}/events/batch", batch)
    assert status == 201, body  # a batch counts every event: 2 of the burst of 2
    status, body, retry_after = await publish_status(http, api)
    assert status == 429 and body["code"] == "rate_limited" and retry_after, body
    status, body = await api.post(f"{V1}/events/batch", {"events": [EVENT] * 3})
    assert status == 413, body  # more than one burst can never fit


async def test_the_ingress_holds_a_tenant_over_quota_and_loses_nothing(redis_pair, http,
                                                                        bootstrap) -> None:
    group, a, _ = redis_pair
    slow, fast = unique("qslow"), unique("qfast")
    slow_api, fast_api = operator(http, group, a, slow), operator(http, group, a, fast)
    await put_quotas(slow_api, {"publish_events_per_s": 2, "burst_s": 1})
    slow_stream, fast_stream = await stream_for(slow_api), await stream_for(fast_api)
    prefix = group.settings.topic_prefix
    # the fast tenant's ingress is being routed (both topics were created together)
    await produce(bootstrap, f"{prefix}.{fast}.ingress", [(b"w", b"{}", ce_headers(
        fast, "q.created", source="quota_src"))])
    assert await consume_all(bootstrap, fast_stream["topics"].values(), expect=1, timeout=60)

    slow_records = [(f"k{i}".encode(), b'{"n": %d}' % i,
                     ce_headers(slow, "q.created", source="quota_src")) for i in range(8)]
    fast_records = [(f"k{i}".encode(), b'{"n": %d}' % i,
                     ce_headers(fast, "q.created", source="quota_src")) for i in range(10)]
    started = time.monotonic()
    await asyncio.gather(produce(bootstrap, f"{prefix}.{slow}.ingress", slow_records),
                         produce(bootstrap, f"{prefix}.{fast}.ingress", fast_records))
    fast_seen = await consume_all(bootstrap, fast_stream["topics"].values(), expect=11,
                                  timeout=20)
    assert len(fast_seen) == 11  # the other tenant's lane kept flowing
    slow_so_far = await consume_all(bootstrap, slow_stream["topics"].values(), expect=8,
                                    timeout=0.5)
    assert len(slow_so_far) < 8, "the throttled tenant was not held back"
    slow_seen = await consume_all(bootstrap, slow_stream["topics"].values(), expect=8,
                                  timeout=30)
    elapsed = time.monotonic() - started
    sent = {dict(h)["ce_id"].decode() for _, _, h in slow_records}
    assert {header(r, "ce_id") for r in slow_seen} == sent  # all of them, none twice
    assert len(slow_seen) == 8
    assert elapsed >= 2.5, elapsed  # 2 at once, then 2/s: about 3 s for the other 6
    status, body = await slow_api.get(f"{V1}/dead-letters")
    assert status == 200 and body["dead_letters"] == [], body  # held, never dead-lettered
    async with http.get(group.url(a) + "/metrics") as resp:
        metrics = await resp.text()
    assert f'esb_quota_throttled_total{{path="ingress",tenant="{slow}"}}' in metrics


async def test_count_quotas_are_409_naming_the_limit(bus, http) -> None:
    group, port = bus
    tenant = unique("qc")
    api = operator(http, group, port, tenant)
    await put_quotas(api, {"max_streams": 1, "max_partitions": 5, "max_schemas": 1,
                           "max_read_models": 1})
    await stream_for(api, partitions=2)
    status, body = await api.post(f"{V1}/streams", {"stream_name": unique("qs"),
                                                    "source_capability": "x", "partitions": 1})
    assert status == 409 and body["code"] == "quota_exceeded", body
    assert body["limit"] == "max_streams" and body["maximum"] == 1
    await put_quotas(api, {"max_streams": None})  # back to the default: partitions bind now
    status, body = await api.post(f"{V1}/streams", {"stream_name": unique("qs"),
                                                    "source_capability": "x", "partitions": 4})
    assert status == 409 and body["limit"] == "max_partitions", body
    await stream_for(api, partitions=3)  # 2 + 3 = 5 fits exactly

    schema = {"schema_name": "q", "json_schema": {"type": "object"}}
    status, body = await api.post(f"{V1}/schemas", {**schema, "event_type": "q.one"})
    assert status in (200, 201), body
    status, body = await api.post(f"{V1}/schemas", {**schema, "event_type": "q.one",
                                                    "json_schema": {"type": "object",
                                                                    "title": "v2"}})
    assert status in (200, 201), body  # a new version of the same subject is not a new schema
    status, body = await api.post(f"{V1}/schemas", {**schema, "event_type": "q.two"})
    assert status == 409 and body["limit"] == "max_schemas", body

    status, body = await api.post(f"{V1}/read-models", {"name": "rm1", "event_types": ["q.*"]})
    assert status == 201, body
    status, body = await api.post(f"{V1}/read-models", {"name": "rm1", "event_types": ["x.*"]})
    assert status == 201, body  # replacing a model is not a new one
    status, body = await api.post(f"{V1}/read-models", {"name": "rm2", "event_types": ["q.*"]})
    assert status == 409 and body["limit"] == "max_read_models", body


async def test_only_operators_change_quotas_and_bad_values_are_422(bus, http) -> None:
    group, port = bus
    tenant = unique("qr")
    for role in ("publisher", "reader", "subscriber", "admin"):
        api = Api(http, group.url(port), group.token(tenant, roles=[role]))
        status, body = await api.request("PUT", f"{V1}/quotas", json_body={"max_streams": 1})
        assert status == 403, (role, body)
    reader = Api(http, group.url(port), group.token(tenant, roles=["reader"]))
    status, body = await reader.get(f"{V1}/quotas")
    assert status == 200 and body["tenant_id"] == tenant and body["overrides"] == {}, body
    api = operator(http, group, port, tenant)
    for bad in ({"max_streams": -1}, {"no_such_limit": 1}, {"burst_s": 0}, [1],
                {"publish_events_per_s": 1e-9}):
        status, body = await api.request("PUT", f"{V1}/quotas", json_body=bad)
        assert status == 422 and body["code"] == "validation_failed", (bad, body)
