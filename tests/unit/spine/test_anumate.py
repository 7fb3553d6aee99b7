"""Seed 003's REST body mapped onto the seed-000 publish body, and its health document."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from esb.anumate import DEFAULT_STREAM, AnumatePublishIn, health_shape, to_event_in
from esb.envelope import EventIn


def test_the_anumate_body_becomes_an_event_for_the_default_stream() -> None:
    body = AnumatePublishIn.model_validate(
        {"event_type": "com.anumate.test.event", "data": {"m": 1}, "tenant_id": "t1"})
    event = EventIn.model_validate(to_event_in(body, "https://anumate.com/test"))
    assert (event.event_type, event.source_capability, event.payload, event.tenant_id,
            event.stream_name) == ("com.anumate.test.event", "https://anumate.com/test",
                                   {"m": 1}, "t1", DEFAULT_STREAM)


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        AnumatePublishIn.model_validate({"event_type": "a.b", "payload": {}})


def test_health_is_healthy_only_when_every_check_is() -> None:
    good = health_shape({"broker": {"ok": True}, "database": {"ok": True}})
    assert good["status"] == "healthy" and good["details"] == {
        "broker_connected": True, "database_connected": True, "running": True}
    bad = health_shape({"broker": {"ok": False}, "database": {"ok": True}})
    assert bad["status"] == "unhealthy" and bad["details"]["broker_connected"] is False
