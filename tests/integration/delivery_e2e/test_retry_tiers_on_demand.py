"""Retry tiers consume only while they may hold records (ADR 0021, ``OnDemandTiers``).

An idle worker runs no retry-tier consumer; a failed attempt starts the tier it parks in; a
worker killed while records wait in a tier leaves them to the next worker, which finds the
backlog at start-up and delivers every one.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from tests.integration.delivery_e2e.conftest import delivery_env, make_stream, publish, subscribe
from tests.support import Api, eventually, unique

pytestmark = [pytest.mark.integration, pytest.mark.redis]


async def _retry_groups(http: Any, url: str) -> set[str]:
    """Retry-tier groups the worker's lag scan saw (it scans only the loops that run)."""
    async with http.get(url + "/metrics") as resp:
        text = await resp.text()
    return {m.group(1) for m in re.finditer(
        r'^esb_consumer_lag_records\{[^}]*group="([^"]*delivery-retry[^"]*)"', text, re.M)}


async def test_tiers_start_on_demand_and_a_backlog_survives_a_kill(
        worker_group: Any, redis_url: str, receiver: Any, http: Any) -> None:
    env = {**delivery_env(redis_url), "ESB_DELIVERY_RETRY_TIERS_S": "0.5,8",
           "ESB_MONITOR_INTERVAL_S": "0.5"}
    port = await asyncio.to_thread(worker_group.start, **env)
    tenant = unique()
    api = Api(http, worker_group.url(port), worker_group.token(tenant))
    stream = await make_stream(api)
    receiver.behaviour["later"] = "down"
    sub = await subscribe(api, stream, receiver.url("later"), retry_policy={
        "max_retries": 3, "retry_delay_ms": 9000, "exponential_backoff": False})
    await asyncio.sleep(2)  # a few lag scans of the idle worker
    assert await _retry_groups(http, worker_group.url(port)) == set()

    ids = await publish(api, 5, keys=5)

    async def parked() -> bool | None:
        code, body = await api.get(f"/api/v1/subscriptions/{sub['subscription_id']}/status")
        assert code == 200, body
        return body["events_retrying"] == 5 or None
    await eventually(parked, timeout=30, interval=0.1)
    # one failed attempt each, now waiting in the 8 s tier
    assert [code for path, _at, code in receiver.hits if path == "later"] == [503] * 5
    groups = await eventually(lambda: _retry_groups(http, worker_group.url(port)), timeout=10)
    assert {g.rsplit(".", 1)[-1] for g in groups} == {"8s"}, groups

    await asyncio.to_thread(worker_group.kill, port)
    receiver.behaviour["later"] = "ok"
    port2 = await asyncio.to_thread(worker_group.start, **env)
    assert port2

    async def delivered() -> bool | None:
        return set(receiver.ids("later")) >= set(ids) or None
    # the tier is due 8 s after parking; the next worker's periodic check (30 s) must not be
    # what finds it: the start-up check does, well within this bound
    await eventually(delivered, timeout=25, interval=0.2)
