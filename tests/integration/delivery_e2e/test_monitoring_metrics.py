"""Consumer lag (records and seconds), delivery and dead-letter metrics on a real worker:
a slow webhook makes its subscription fall behind, the background scan (every 0.5 s here)
shows the lag in /metrics and on /ws/monitoring, and it drains to zero once delivered."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.delivery_e2e.conftest import (
    Receiver,
    delivery_env,
    make_stream,
    publish,
    subscribe,
)
from tests.integration.monitoring.prom import values
from tests.support import Api, WorkerGroup, eventually, unique

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def monitored_bus(broker_url: str, database_url: str, redis_url: str
                  ) -> Iterator[tuple[WorkerGroup, int]]:
    group = WorkerGroup(broker_url, database_url, Path(tempfile.mkdtemp(prefix="esb-monitor-")))
    port = group.start(**delivery_env(redis_url), ESB_MONITOR_INTERVAL_S="0.5")
    try:
        yield group, port
    finally:
        group.stop_all()


async def _tenant_stream(bus: tuple[WorkerGroup, int], http: Any) -> tuple[str, Api, str]:
    group, port = bus
    tenant = unique()
    api = Api(http, group.url(port), group.token(tenant))
    return tenant, api, await make_stream(api)


async def test_lag_builds_behind_a_slow_webhook_and_drains(monitored_bus: Any, http: Any,
                                                           receiver: Receiver) -> None:
    tenant, api, stream = await _tenant_stream(monitored_bus, http)
    receiver.behaviour["slow"] = "delay:0.3"
    sub = await subscribe(api, stream, receiver.url("slow"))
    await publish(api, 30)

    async def metrics() -> str:
        status, text = await api.get("/api/v1/metrics")
        assert status == 200
        return text  # type: ignore[no-any-return]

    async def lagging() -> tuple[float, float] | None:
        text = await metrics()
        records = sum(values(text, "esb_consumer_lag_records", tenant=tenant, stream=stream,
                              group=sub["subscription_id"]))
        seconds = max(values(text, "esb_consumer_lag_seconds", tenant=tenant,
                              stream=stream), default=0.0)
        return (records, seconds) if records > 0 and seconds > 0 else None

    records, seconds = await eventually(lagging, timeout=20, interval=0.3)
    assert 0 < records <= 30 and 0 < seconds < 60

    async with http.ws_connect(api.base.replace("http", "ws") + "/ws/monitoring",
                               headers=api.headers()) as ws:
        await ws.receive_json(timeout=10)
        await ws.send_json({"type": "subscribe", "streams": [stream], "metrics": ["lag"]})
        while (message := await ws.receive_json(timeout=10))["message_type"] != "monitoring":
            pass
        assert message["data"][stream]["lag"] >= 0  # may already be draining

    async def drained() -> bool:
        text = await metrics()
        done = sum(values(text, "esb_delivery_events_total", tenant=tenant, stream=stream,
                           action="done"))
        lag = sum(values(text, "esb_consumer_lag_records", tenant=tenant, stream=stream))
        return done == 30 and lag == 0

    await eventually(drained, timeout=40, interval=0.5)
    text = await metrics()
    assert sum(values(text, "esb_delivery_attempts_total", tenant=tenant, stream=stream,
                       outcome="success")) == 30
    attempts = sum(values(text, "esb_delivery_attempts_total", tenant=tenant))
    assert attempts >= 30  # a slow answer on a loaded machine may time out and be retried
    assert values(text, "esb_delivery_latency_seconds_count", tenant=tenant) == [attempts]
    assert values(text, "esb_delivery_circuit_state", tenant=tenant,
                   subscription=sub["subscription_id"]) == [0.0]
    status, body = await api.get(f"/api/v1/streams/{stream}/metrics")
    assert status == 200 and body["total_events"] == 30 and body["consumer_lag"]["total"] == 0


async def test_dead_letters_are_counted_by_stage_and_reason(monitored_bus: Any, http: Any,
                                                            receiver: Receiver) -> None:
    tenant, api, stream = await _tenant_stream(monitored_bus, http)
    receiver.behaviour["gone"] = "gone"
    await subscribe(api, stream, receiver.url("gone"))
    await publish(api, 1)

    async def counted() -> list[float]:
        text = (await api.get("/api/v1/metrics"))[1]
        return values(text, "esb_dead_letters_total", tenant=tenant, stage="delivery",
                       reason="subscription_disabled")

    assert await eventually(counted, timeout=30, interval=0.5) == [1.0]
    text = (await api.get("/api/v1/metrics"))[1]
    assert values(text, "esb_delivery_events_total", tenant=tenant, action="disable") == [1.0]
    assert values(text, "esb_delivery_attempts_total", tenant=tenant, outcome="disable") == [1.0]
