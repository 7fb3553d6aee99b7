"""Count quotas hold under concurrent creates (ADR 0016): count, check and create happen under
one lock per tenant and kind (in the replica, and across replicas through Redis, after the
holder caught up with the catalog), so creates racing on two replicas never pass the limit
together."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.support import Api, WorkerGroup, unique

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.redis]

V1 = "/api/v1"


@pytest.fixture(scope="module")
def pair(broker_url: str, database_url: str, redis_url: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WorkerGroup, int, int]]:
    """Two replicas of one bus sharing Redis."""
    group = WorkerGroup(broker_url, database_url, tmp_path_factory.mktemp("quota-race"),
                        extra_env={"ESB_REDIS_URL": redis_url})
    with ThreadPoolExecutor(2) as pool:
        try:
            a, b = pool.map(lambda _: group.start(), range(2))
            yield group, a, b
        finally:
            list(pool.map(group.stop, list(group.procs)))


async def test_concurrent_creates_on_two_replicas_never_exceed_a_count(pair, http: Any
                                                                       ) -> None:
    group, a, b = pair
    tenant = unique("qr")
    apis = [Api(http, group.url(port), group.token(tenant, roles=["admin", "operator"]))
            for port in (a, b)]
    status, body = await apis[0].request("PUT", f"{V1}/quotas", json_body={
        "max_schemas": 3, "max_subscriptions": 2})
    assert status == 200, body
    stream = unique("s")
    assert (await apis[1].post(f"{V1}/streams", {"stream_name": stream}))[0] == 201

    async def schema(n: int) -> int:
        status, _ = await apis[n % 2].post(f"{V1}/schemas", {
            "schema_name": f"s{n}", "event_type": f"race.e{n}",
            "json_schema": {"type": "object"}})
        return status

    async def subscription(n: int) -> int:
        status, _ = await apis[n % 2].post(f"{V1}/subscriptions", {
            "subscription_name": f"sub{n}", "stream_id": stream, "consumer_group_id": "g"})
        return status

    schemas = await asyncio.gather(*(schema(n) for n in range(12)))
    subscriptions = await asyncio.gather(*(subscription(n) for n in range(8)))
    assert sorted(schemas) == [201] * 3 + [409] * 9, schemas
    assert sorted(subscriptions) == [201] * 2 + [409] * 6, subscriptions
    for api in apis:  # and both replicas agree on what exists
        status, listed = await api.get(f"{V1}/subscriptions")
        assert status == 200 and listed["total"] == 2, listed
