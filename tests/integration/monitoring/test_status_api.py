"""The seeds' status endpoints on a real worker: shapes, auth, tenant scoping, and the HTTP
metric's route label (a path template, never the raw, tenant-controlled path)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.integration.delivery_e2e.conftest import make_stream
from tests.support import Api, unique

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

V1 = "/api/v1"
STATUS_PATHS = ("/status", "/kafka/health", "/database/health", "/metrics")


async def _publish(api: Api, stream: str, priorities: list[str]) -> None:
    events = [{"event_type": "order.created", "source_capability": "orders", "stream_id": stream,
               "aggregate_id": f"o{i}", "priority": p, "payload": {"i": i}}
              for i, p in enumerate(priorities)]
    status, body = await api.post(f"{V1}/events/batch", {"events": events})
    assert status == 201, body


async def test_status_endpoints_need_a_token(api_for: Any) -> None:
    anonymous = api_for(unique())
    anonymous.token = None
    for path in (*STATUS_PATHS, "/streams/whatever/metrics"):
        status, body = await anonymous.get(V1 + path)
        assert status == 401 and body["code"], (path, body)


async def test_status_reports_components_and_the_callers_tenant(api_for: Any) -> None:
    tenant = unique()
    admin, reader = api_for(tenant), api_for(tenant, roles=["reader"])
    await make_stream(admin)
    status, body = await admin.get(f"{V1}/status")
    assert status == 200, body
    assert body["status"] == "healthy" and body["service"] == "event-streaming-bus"
    assert body["components"]["broker"] == "healthy"
    assert body["components"]["database"] == "healthy"
    assert body["tenant"]["tenant_id"] == tenant and body["tenant"]["streams"] == 1
    assert body["uptime_seconds"] > 0 and "checks" in body  # admins see the detail
    status, plain = await reader.get(f"{V1}/status")
    assert status == 200 and "checks" not in plain and plain["tenant"]["streams"] == 1
    assert (await api_for(unique()).get(f"{V1}/status"))[1]["tenant"]["streams"] == 0

    status, kafka = await admin.get(f"{V1}/kafka/health")
    assert status == 200 and kafka["status"] == "healthy" and kafka["brokers"] >= 1
    assert kafka["response_time_ms"] >= 0 and "bootstrap_servers" in kafka
    status, kafka = await reader.get(f"{V1}/kafka/health")
    assert status == 200 and "bootstrap_servers" not in kafka
    status, db = await reader.get(f"{V1}/database/health")
    assert status == 200 and db["status"] == "healthy" and db["database"] == "postgresql"
    assert "pool" not in db and "pool" in (await admin.get(f"{V1}/database/health"))[1]


async def test_api_metrics_shows_the_tenants_series_only(api_for: Any) -> None:
    mine, other = unique(), unique()
    api = api_for(mine)
    stream = await make_stream(api)
    await _publish(api, stream, ["NORMAL", "NORMAL"])
    await _publish(api_for(other), await make_stream(api_for(other)), ["HIGH"])
    status, text = await api.get(f"{V1}/metrics")
    assert status == 200
    pattern = r'esb_events_published_total\{[^}]*stream="' + stream + r'"[^}]*\} (\S+)'
    published = re.search(pattern, text)
    assert published and float(published.group(1)) == 2.0, text[:2000]
    assert f'tenant="{mine}"' in text and other not in text
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total",
                 "esb_data_dir_filesystem_free_bytes", "esb_http_requests_total"):
        assert f"\n{name}" in text, name
    status, everything = await api_for(unique(), roles=["operator"]).get(f"{V1}/metrics")
    assert status == 200 and mine in everything and other in everything


async def test_stream_metrics_count_events_by_priority(api_for: Any) -> None:
    api = api_for(unique())
    stream = await make_stream(api)
    await _publish(api, stream, ["NORMAL", "HIGH", "NORMAL"])
    status, body = await api.get(f"{V1}/streams/{stream}/metrics")
    assert status == 200, body
    assert body["stream_name"] == stream and body["total_events"] == 3
    assert body["events_by_priority"]["NORMAL"] == 2 and body["events_by_priority"]["HIGH"] == 1
    assert body["replica"]["events_accepted"] == 3
    assert body["replica"]["avg_publish_latency_ms"] > 0
    assert body["consumer_lag"] == {"total": 0, "max_seconds": 0.0, "by_group": {}}
    assert (await api.get(f"{V1}/streams/str_{stream}/metrics"))[0] == 200
    status, problem = await api_for(unique()).get(f"{V1}/streams/{stream}/metrics")
    assert status == 404 and problem["code"] == "not_found"
    assert (await api.get(f"{V1}/streams/{unique('nope')}/metrics"))[0] == 404


async def test_http_requests_are_labelled_by_route_template_not_raw_path(api_for: Any,
                                                                         http: Any) -> None:
    api = api_for(unique())
    marks = [unique("raw") for _ in range(3)]
    for mark in marks:
        assert (await api.get(f"{V1}/streams/{mark}/metrics"))[0] == 404
        assert (await api.get(f"{V1}/{mark}/anything"))[0] == 404
        assert (await api.get(f"/{mark}"))[0] == 404
    async with http.get(api.base + "/metrics") as resp:
        text = await resp.text()
    assert not [m for m in marks if m in text], "a raw path leaked into a label"
    assert re.search(r'esb_http_requests_total\{method="GET",route="/api/v1/streams/'
                     r'\{stream_id\}/metrics",status="404"\} [1-9]', text)
    assert re.search(r'esb_http_requests_total\{method="GET",route="unmatched",'
                     r'status="404"\} [1-9]', text)
