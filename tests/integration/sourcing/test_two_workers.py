"""Linearizable appends across two worker replicas, and recovery after kill -9 of one."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.support import Api, eventually, unique

pytestmark = pytest.mark.integration

APPEND = "/api/v1/event-sourcing/append"
RECONSTRUCT = "/api/v1/event-sourcing/reconstruct"


def append(agg: str, n: int, expected: object) -> dict:  # type: ignore[type-arg]
    return {"aggregate_id": agg, "aggregate_type": "Account", "event_type": "account.changed",
            "event_data": {"n": n}, "expected_version": expected}


async def _ready(api: Api, agg: str) -> bool:
    status, _ = await api.post(APPEND, append(agg, 0, "any"))
    return status == 201


async def test_concurrent_appends_and_kill_9(worker_group) -> None:  # type: ignore[no-untyped-def]
    group = worker_group
    tenant = unique()
    first = group.start()
    second = group.start()
    async with aiohttp.ClientSession() as http:
        apis = [Api(http, group.url(p), group.token(tenant)) for p in (first, second)]
        aggregates = [unique("acc_") for _ in range(6)]
        # both workers answer for every aggregate once the group has settled
        for agg in aggregates:
            for api in apis:
                await eventually(lambda api=api, agg=agg: _ready(api, agg), timeout=90)
        owners: dict[str, str] = {}
        for agg in aggregates:
            for round_ in range(3):
                status, state = await apis[0].post(RECONSTRUCT, {
                    "aggregate_id": agg, "aggregate_type": "Account"})
                version = state["current_version"]
                racers = [apis[i % 2].post(APPEND, append(agg, round_ * 10 + i, version))
                          for i in range(6)]
                results = await asyncio.gather(*racers)
                statuses = sorted(s for s, _ in results)
                assert statuses == [201] + [409] * 5, results
                for s, answer in results:
                    if s == 409:
                        assert answer["current_version"] in (version, version + 1)
                winner = next(a for s, a in results if s == 201)
                assert winner["version"] == version + 1
            status, page = await apis[1].get(f"/api/v1/event-sourcing/aggregate/{agg}/events")
            versions = [e["version"] for e in page["events"]]
            assert versions == list(range(1, len(versions) + 1)) == list(range(1, 6)), versions
            # whichever replica is asked, the same owner decided (forwarded, not answered locally)
            answered_by = set()
            for api in apis:
                async with http.post(api.base + RECONSTRUCT, headers=api.headers(), json={
                        "aggregate_id": agg, "aggregate_type": "Account"}) as resp:
                    assert resp.status == 200
                    answered_by.add(resp.headers["X-Esb-Owner"])
            assert len(answered_by) == 1, answered_by
            owners[agg] = answered_by.pop()

        expected = {}
        for agg in aggregates:
            _, state = await apis[0].post(RECONSTRUCT, {"aggregate_id": agg,
                                                        "aggregate_type": "Account"})
            expected[agg] = (state["current_version"], state["state"])

        group.kill(first)
        survivor = apis[1]

        async def recovered() -> bool:
            for agg in aggregates:
                status, state = await survivor.post(RECONSTRUCT, {
                    "aggregate_id": agg, "aggregate_type": "Account"})
                if status != 200:
                    return False
                assert (state["current_version"], state["state"]) == expected[agg]
            return True

        await eventually(recovered, timeout=120, interval=1.0)
        # and it keeps deciding: version checks hold on the recovered state
        for agg in aggregates:
            version = expected[agg][0]
            status, problem = await survivor.post(APPEND, append(agg, 99, version - 1))
            assert status == 409 and problem["current_version"] == version
            status, ok = await survivor.post(APPEND, append(agg, 99, version))
            assert status == 201 and ok["version"] == version + 1
