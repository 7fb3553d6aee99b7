from __future__ import annotations

from datetime import UTC, datetime

import pytest

from esb.errors import ValidationFailed, VersionConflict
from esb.sourcing import (
    NO_STREAM,
    AppendRequest,
    AppendResponse,
    ExpectedVersion,
    ReconstructRequest,
    ReconstructResponse,
    ReducerRegistry,
    decide_append,
    reconstruct,
)

SEED_APPEND = {
    "aggregate_id": "user_123",
    "aggregate_type": "User",
    "event_type": "user.updated",
    "event_data": {"email": "john.doe@company.com", "last_login": "2025-01-26T10:30:00Z"},
    "expected_version": 5,
    "correlation_id": "corr_456",
    "metadata": {"source": "user_service", "user_agent": "mobile_app_v1.2"},
}


def test_seed_append_body_parses_and_becomes_a_command():
    request = AppendRequest.parse(SEED_APPEND)
    assert request.expected() == ExpectedVersion.exact(5)
    at = datetime(2025, 1, 26, tzinfo=UTC)
    cmd = request.to_command(tenant_id="tenant_001", user_id="user_456", timestamp=at)
    assert cmd.tenant_id == "tenant_001" and cmd.user_id == "user_456"
    assert cmd.event_id.startswith("evt_") and cmd.timestamp == at
    assert cmd.data == SEED_APPEND["event_data"] and cmd.correlation_id == "corr_456"


def test_client_event_id_is_kept_for_idempotent_retries():
    request = AppendRequest.parse({**SEED_APPEND, "event_id": "evt_client_1"})
    assert request.to_command(tenant_id="t").event_id == "evt_client_1"


@pytest.mark.parametrize("value", ["no_stream", "stream_exists", "any", None, 0])
def test_named_expected_versions_parse(value):
    assert AppendRequest.parse({**SEED_APPEND, "expected_version": value}).expected() == \
        ExpectedVersion.parse(value)


@pytest.mark.parametrize("value", [-1, "latest", True, 1.5])
def test_bad_expected_version_is_a_validation_failure_with_path(value):
    with pytest.raises(ValidationFailed) as info:
        AppendRequest.parse({**SEED_APPEND, "expected_version": value})
    assert all(e["path"].startswith("expected_version") for e in info.value.errors)


def test_missing_fields_are_reported_by_path():
    with pytest.raises(ValidationFailed) as info:
        AppendRequest.parse({"event_data": {}})
    assert {e["path"] for e in info.value.errors} == {
        "aggregate_id", "aggregate_type", "event_type"}


def test_append_response_from_decisions():
    request = AppendRequest.parse({**SEED_APPEND, "expected_version": "no_stream",
                                   "event_id": "evt_1"})
    first = decide_append(None, request.to_command(tenant_id="t"), reducers=ReducerRegistry())
    body = AppendResponse.from_decision(first).model_dump()
    assert body == {"event_id": "evt_1", "message": "Event appended successfully",
                    "aggregate_id": "user_123", "version": 1, "duplicate": False}
    again = decide_append(first.state, request.to_command(tenant_id="t"),
                          reducers=ReducerRegistry())
    assert AppendResponse.from_decision(again).duplicate is True
    other = AppendRequest.parse({**SEED_APPEND, "expected_version": "no_stream"})
    conflict = decide_append(first.state, other.to_command(tenant_id="t"),
                             reducers=ReducerRegistry())
    with pytest.raises(VersionConflict) as info:
        AppendResponse.from_decision(conflict)
    assert info.value.to_problem()["current_version"] == 1


def test_reconstruct_request_and_seed_response_shape():
    request = ReconstructRequest.parse({"aggregate_id": "user_123", "aggregate_type": "User",
                                        "update_snapshots": True})
    assert request.update_snapshots and request.as_of_version is None
    with pytest.raises(ValidationFailed):
        ReconstructRequest.parse({"aggregate_id": "u", "aggregate_type": "User",
                                  "as_of_version": 1, "as_of_time": "2025-01-26T10:30:00Z"})
    with pytest.raises(ValidationFailed):  # naive times are ambiguous
        ReconstructRequest.parse({"aggregate_id": "u", "aggregate_type": "User",
                                  "as_of_time": "2025-01-26T10:30:00"})

    cmd = AppendRequest.parse({**SEED_APPEND, "expected_version": NO_STREAM.to_wire()}).to_command(
        tenant_id="t", timestamp=datetime(2025, 1, 26, 10, 30, tzinfo=UTC))
    decision = decide_append(None, cmd, reducers=ReducerRegistry())
    result = reconstruct("user_123", "User", [decision.event], reducers=ReducerRegistry())
    body = ReconstructResponse.from_reconstruction(result).model_dump(mode="json")
    assert body == {
        "aggregate_id": "user_123",
        "aggregate_type": "User",
        "current_version": 1,
        "state": SEED_APPEND["event_data"],
        "last_event_timestamp": "2025-01-26T10:30:00Z",
        "snapshot_version": None,
        "events_applied": 1,
    }
