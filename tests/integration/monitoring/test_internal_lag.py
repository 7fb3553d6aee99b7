"""Consumer lag of the worker's own groups (ADR 0020), not only subscriptions': a tenant held by
its publish quota on the Kafka ingress makes the ingress lane's group fall behind on that
tenant's topic; the lag shows in /metrics (records and seconds, labelled with the tenant and
``stage="ingress"``) and drops to 0 once the quota is lifted and the records are routed. The
projection, dead-letter indexer and sourcing groups are scanned too."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.delivery_e2e.conftest import delivery_env
from tests.integration.monitoring.prom import values
from tests.integration.processing.helpers import make_stream as make_job_stream
from tests.support import Api, WorkerGroup, ce_headers, consume_all, eventually, produce, unique

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.redis]

V1 = "/api/v1"


@pytest.fixture(scope="module")
def scanned_bus(broker_url: str, database_url: str, redis_url: str
                ) -> Iterator[tuple[WorkerGroup, int]]:
    group = WorkerGroup(broker_url, database_url, Path(tempfile.mkdtemp(prefix="esb-lag-")))
    port = group.start(**delivery_env(redis_url), ESB_MONITOR_INTERVAL_S="0.5")
    try:
        yield group, port
    finally:
        group.stop_all()


async def test_an_ingress_lane_lag_shows_per_tenant_and_drains(scanned_bus: Any, http: Any,
                                                              bootstrap: str) -> None:
    group, port = scanned_bus
    tenant = unique("lag")
    api = Api(http, group.url(port), group.token(tenant, roles=["admin", "operator"]))
    status, body = await api.post(f"{V1}/streams", {"stream_name": unique("ls"),
                                                    "source_capability": "lag_src"})
    assert status == 201, body
    stream = body["stream"]
    ingress = f"{group.settings.topic_prefix}.{tenant}.ingress"
    # the lane routes this tenant's topic before the quota holds it
    await produce(bootstrap, ingress, [(b"w", b"{}", ce_headers(tenant, "l.created",
                                                                source="lag_src"))])
    assert await consume_all(bootstrap, stream["topics"].values(), expect=1, timeout=60)

    async def put_quota(rate: float) -> None:
        status, answer = await api.request("PUT", f"{V1}/quotas", json_body={
            "publish_events_per_s": rate, "burst_s": 1})
        assert status == 200, answer

    async def lag() -> tuple[float, float, set[str]]:
        status, text = await api.get(f"{V1}/metrics")
        assert status == 200
        mine = {"tenant": tenant, "stage": "ingress"}
        groups = {g for g in _labels(text, "esb_consumer_lag_records", "group", **mine)
                  if sum(values(text, "esb_consumer_lag_records", group=g, **mine)) > 0}
        return (sum(values(text, "esb_consumer_lag_records", **mine)),
                max(values(text, "esb_consumer_lag_seconds", **mine), default=0.0), groups)

    await put_quota(0.2)  # one event every 5 s: 20 records wait in the ingress
    await produce(bootstrap, ingress, [(f"k{i}".encode(), b'{"n": %d}' % i,
                                        ce_headers(tenant, "l.created", source="lag_src"))
                                       for i in range(20)])

    async def behind() -> tuple[float, float, set[str]] | None:
        records, seconds, groups = await lag()
        return (records, seconds, groups) if records >= 10 and seconds > 0 else None
    records, seconds, groups = await eventually(behind, timeout=30)
    assert records <= 20 and seconds < 60
    assert len(groups) == 1 and next(iter(groups)).endswith("-router-normal")  # the NORMAL lane

    await put_quota(0)  # unlimited: the held partition resumes and drains

    async def drained() -> bool:
        records, seconds, _ = await lag()
        return records == 0 and seconds == 0
    await eventually(drained, timeout=30)
    assert len(await consume_all(bootstrap, stream["topics"].values(), expect=21,
                                 timeout=30)) == 21

    async with http.get(group.url(port) + "/metrics") as resp:  # the scraper sees every group
        text = await resp.text()
    stages = set(_labels(text, "esb_consumer_lag_records", "stage"))
    # retry tiers run only while they hold records (test_retry_tiers_on_demand.py)
    assert {"ingress", "projection", "deadletter-index", "sourcing"} <= stages, stages


async def test_a_processors_group_is_scanned_with_its_tenant(scanned_bus: Any, http: Any) -> None:
    group, port = scanned_bus
    tenant = unique("lagp")
    api = Api(http, group.url(port), group.token(tenant))
    source, target = await make_job_stream(api), await make_job_stream(api)
    status, created = await api.post(f"{V1}/stream-processors", {
        "processor_name": unique("filter"), "processor_type": "FILTER",
        "source_stream_id": source["stream_id"], "target_stream_id": target["stream_id"],
        "processing_logic": {"filter_expression": "payload.amount > 10"}})
    assert status == 201, created
    job = created["processor_id"]
    assert (await api.post(f"{V1}/stream-processors/{job}/start"))[0] == 200

    async def scanned() -> list[str] | None:
        status, text = await api.get(f"{V1}/metrics")
        assert status == 200
        groups = _labels(text, "esb_consumer_lag_records", "group", tenant=tenant,
                         stage="processor", stream=source["stream_name"])
        return groups or None
    groups = await eventually(scanned, timeout=30)
    assert all(g.endswith(f".proc.{job}") for g in groups), groups


def _labels(text: str, metric: str, name: str, **labels: str) -> list[str]:
    """Values of label ``name`` on ``metric``'s samples that carry ``labels``."""
    import re

    out = []
    for line in text.splitlines():
        if line.startswith(metric + "{"):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
            if all(found.get(k) == v for k, v in labels.items()) and name in found:
                out.append(found[name])
    return out


async def test_the_sourcing_owners_group_is_caught_up_after_appends(scanned_bus: Any,
                                                                    http: Any) -> None:
    """Faust commits the owner agent's offsets under the app id: after appends are answered
    the ``sourcing`` group's lag returns to 0 (it would stay at the command count if the
    scan read the wrong group)."""
    group, port = scanned_bus
    api = Api(http, group.url(port), group.token(unique("lags")))
    for n in range(3):
        status, body = await api.post(f"{V1}/event-sourcing/append", {
            "aggregate_id": unique("agg"), "aggregate_type": "Order",
            "event_type": "order.created", "event_data": {"n": n}})
        assert status == 201, body

    async def caught_up() -> bool:
        async with http.get(group.url(port) + "/metrics") as resp:
            text = await resp.text()
        lag = values(text, "esb_consumer_lag_records", stage="sourcing")
        return bool(lag) and sum(lag) == 0
    await asyncio.sleep(2)  # a scan (every 0.5 s) that started after the commands were sent
    await eventually(caught_up, timeout=30)
