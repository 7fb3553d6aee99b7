"""CEP patterns on the shared worker: a sequence alert with its matched ids on the alerts stream,
and an absence alert fired by the wall-clock timer with no further events."""

from __future__ import annotations

import json
import time

import pytest

from esb import ids
from tests.integration.processing.helpers import event_record, make_stream, publish, read_stream
from tests.support import eventually, header, unique

pytestmark = pytest.mark.integration


async def create_and_start(api, body: dict) -> dict:
    status, created = await api.post("/api/v1/patterns", body)
    assert status == 201, created
    pattern_id = created["pattern_id"]
    status, started = await api.post(f"/api/v1/patterns/{pattern_id}/start")
    assert status == 200, started
    return created["pattern"]  # type: ignore[no-any-return]


async def alerts_stream(api) -> dict:
    status, stream = await api.get("/api/v1/streams/alerts")
    assert status == 200, stream
    return stream  # type: ignore[no-any-return]


async def test_sequence_pattern_emits_an_alert_with_the_matched_ids(api_for, bootstrap) -> None:
    tenant = unique()
    api = api_for(tenant)
    source = await make_stream(api)
    now = int(time.time() * 1000)
    a, b, c = ids.event_id(), ids.event_id(), ids.event_id()
    records = [
        event_record(tenant, "login.failed", {}, time_ms=now, key="u1", event_id=a,
                     correlationid="session-1"),
        event_record(tenant, "page.viewed", {}, time_ms=now + 1, key="u1",
                     correlationid="session-1"),
        event_record(tenant, "password.reset", {}, time_ms=now + 2, key="u1", event_id=b,
                     correlationid="session-1"),
        event_record(tenant, "login.succeeded", {}, time_ms=now + 3, key="u1", event_id=c,
                     correlationid="session-1"),
        # another session never resets its password: no match
        event_record(tenant, "login.failed", {}, time_ms=now, key="u2",
                     correlationid="session-2"),
        event_record(tenant, "login.succeeded", {}, time_ms=now + 5, key="u2",
                     correlationid="session-2"),
    ]
    await publish(bootstrap, source, records)
    pattern = await create_and_start(api, {
        "pattern_name": unique("takeover"), "source_stream_id": source["stream_id"],
        "timers": "event_time", "kind": "sequence",
        "event_types": ["login.failed", "password.reset", "login.succeeded"],
        "within_ms": 60_000})
    assert pattern["alerts_stream_id"] == "str_alerts"
    alerts = await read_stream(bootstrap, await alerts_stream(api), expect=1, timeout=60)
    assert len(alerts) == 1, alerts
    alert = alerts[0]
    payload = json.loads(alert.value)
    assert payload["matched_event_ids"] == [a, b, c]
    assert payload["key"] == "session-1" and payload["kind"] == "sequence"
    assert header(alert, "ce_type") == "esb.pattern.sequence"
    assert header(alert, "ce_correlationid") == "session-1"
    assert header(alert, "ce_causationid") == c

    async def saved():  # the state is saved right after the alert is acknowledged
        status, body = await api.get(f"/api/v1/patterns/{pattern['pattern_id']}/matches")
        assert status == 200, body
        return body if body["matches_total"] == 1 else None

    matches = await eventually(saved, timeout=20)
    assert matches["matches"][0]["matched_event_ids"] == [a, b, c]
    assert matches["matches"][0]["alert_event_id"] == header(alert, "ce_id")
    assert matches["metrics"]["events_processed"] == len(records)


async def test_absence_pattern_fires_by_timer(api_for, bootstrap) -> None:
    tenant = unique()
    api = api_for(tenant)
    source = await make_stream(api)
    now = int(time.time() * 1000)
    paid_late, ok_order = ids.event_id(), ids.event_id()
    await publish(bootstrap, source, [
        event_record(tenant, "order.placed", {}, time_ms=now, key="o1", event_id=paid_late,
                     correlationid="order-1"),
        event_record(tenant, "order.placed", {}, time_ms=now, key="o2", event_id=ok_order,
                     correlationid="order-2"),
        event_record(tenant, "order.paid", {}, time_ms=now + 200, key="o2",
                     correlationid="order-2"),
    ])
    pattern = await create_and_start(api, {
        "pattern_name": unique("unpaid"), "source_stream_id": source["stream_id"],
        "alerts_stream_id": "unpaid-alerts", "timers": "wall_clock", "timer_lag_ms": 3000,
        "kind": "absence", "trigger_event_type": "order.placed",
        "expected_event_type": "order.paid", "within_ms": 1000})
    # no event ever follows: only the timer can fire the alert
    status, stream = await api.get("/api/v1/streams/unpaid-alerts")
    assert status == 200, stream
    alerts = await read_stream(bootstrap, stream, expect=1, timeout=60)
    assert len(alerts) == 1, alerts
    payload = json.loads(alerts[0].value)
    assert payload["matched_event_ids"] == [paid_late]
    assert payload["kind"] == "absence" and payload["key"] == "order-1"
    assert payload["details"]["deadline"] == now + 1000
    assert header(alerts[0], "ce_correlationid") == "order-1"

    async def counted():
        body = (await api.get(f"/api/v1/patterns/{pattern['pattern_id']}/matches"))[1]
        return body if body["matches_total"] == 1 else None

    body = await eventually(counted, timeout=20)
    assert body["matches"][0]["matched_event_ids"] == [paid_late]
    status, stopped = await api.post(f"/api/v1/patterns/{pattern['pattern_id']}/stop")
    assert status == 200 and stopped["status"] == "STOPPED"
