"""Processor and event-sourcing metrics on a real worker: what a FILTER processor passed and
filtered, and sourcing appends by outcome (a 409 is a ``conflict``) and reconstruct time."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.monitoring.prom import values
from tests.integration.processing.helpers import event_record
from tests.integration.processing.helpers import make_stream as make_job_stream
from tests.integration.processing.helpers import publish as produce_records
from tests.support import Api, eventually, unique

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


async def _sample(api: Api, metric: str, **labels: str) -> float:
    """Sum of ``metric`` samples with ``labels`` in the tenant's /api/v1/metrics."""
    status, text = await api.get("/api/v1/metrics")
    assert status == 200
    return sum(values(text, metric, **labels))


async def test_sourcing_appends_by_outcome_and_reconstruct_time(api_for: Any) -> None:
    tenant = unique()
    api = api_for(tenant)
    body = {"aggregate_id": unique("agg"), "aggregate_type": "Order",
            "event_type": "order.created", "event_data": {"n": 1},
            "expected_version": "no_stream"}
    assert (await api.post("/api/v1/event-sourcing/append", body))[0] == 201
    status, problem = await api.post("/api/v1/event-sourcing/append",
                                      body | {"event_data": {"n": 2}})
    assert status == 409, problem
    status, _ = await api.post("/api/v1/event-sourcing/reconstruct",
                               {"aggregate_id": body["aggregate_id"], "aggregate_type": "Order"})
    assert status == 200
    assert await _sample(api, "esb_sourcing_appends_total", tenant=tenant,
                         outcome="accepted") == 1
    assert await _sample(api, "esb_sourcing_appends_total", tenant=tenant,
                         outcome="conflict") == 1
    assert await _sample(api, "esb_sourcing_reconstruct_seconds_count", tenant=tenant) == 1


async def test_filter_processor_throughput_by_outcome(api_for: Any, bootstrap: str) -> None:
    tenant = unique()
    api = api_for(tenant)
    source, target = await make_job_stream(api), await make_job_stream(api)
    status, created = await api.post("/api/v1/stream-processors", {
        "processor_name": unique("filter"), "processor_type": "FILTER",
        "source_stream_id": source["stream_id"], "target_stream_id": target["stream_id"],
        "processing_logic": {"filter_expression": "payload.amount > 10"}})
    assert status == 201, created
    job = created["processor_id"]
    now = int(time.time() * 1000)
    await produce_records(bootstrap, source, [
        event_record(tenant, "order.placed", {"amount": amount}, time_ms=now + i, key=f"k{i}")
        for i, amount in enumerate([5, 20, 30, 1, 50])])
    assert (await api.post(f"/api/v1/stream-processors/{job}/start"))[0] == 200

    async def handled() -> float:
        return await _sample(api, "esb_processor_events_total", tenant=tenant, job=job)

    assert await eventually(handled, timeout=60, interval=0.5) >= 5
    await eventually(lambda: _equals(handled, 5), timeout=10)
    assert await _sample(api, "esb_processor_events_total", job=job, outcome="passed") == 3
    assert await _sample(api, "esb_processor_events_total", job=job, outcome="filtered") == 2


async def _equals(read: Any, value: float) -> bool:
    return bool(await read() == value)
