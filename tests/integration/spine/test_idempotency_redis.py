"""Idempotency keys shared across replicas through Redis: a retry on another replica publishes
nothing and returns the first answer."""

from __future__ import annotations

import asyncio

import pytest

from tests.support import Api, consume_all, unique

pytestmark = [pytest.mark.integration, pytest.mark.redis]


async def test_idempotency_key_is_shared_across_replicas(worker_group, redis_url, http,
                                                         bootstrap) -> None:
    a = worker_group.start(ESB_REDIS_URL=redis_url)
    b = worker_group.start(ESB_REDIS_URL=redis_url)
    tenant = unique()
    api_a = Api(http, worker_group.url(a), worker_group.token(tenant))
    api_b = Api(http, worker_group.url(b), worker_group.token(tenant))
    status, created = await api_a.post("/api/v1/streams", {"stream_name": "users",
                                                           "source_capability": "users"})
    assert status == 201, created
    body = {"event_type": "user.created", "source_capability": "users", "payload": {"x": 1}}
    key = {"Idempotency-Key": unique("key")}
    answers = await asyncio.gather(*[api.post("/api/v1/events", body, headers=key)
                                     for api in (api_a, api_b, api_a, api_b)])
    assert {status for status, _ in answers} == {201}, answers
    assert len({answer["event_id"] for _, answer in answers}) == 1
    records = await consume_all(bootstrap, created["stream"]["topics"].values(), expect=2,
                                timeout=4)
    assert len(records) == 1
