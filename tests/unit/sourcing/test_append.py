from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from esb.errors import Conflict, VersionConflict
from esb.sourcing import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AggregateState,
    AppendCommand,
    AppendOutcome,
    ExpectedVersion,
    ReducerRegistry,
    decide_append,
)

T0 = datetime(2025, 1, 26, 10, 30, tzinfo=UTC)


def command(event_id: str, data: dict | None = None, expected=ANY, *, at: datetime = T0,
            aggregate_type: str = "User") -> AppendCommand:
    return AppendCommand(event_id=event_id, aggregate_id="user_123", aggregate_type=aggregate_type,
                         event_type="user.updated", data=data or {}, timestamp=at,
                         expected_version=expected, tenant_id="t1")


def append_all(*commands: AppendCommand, state: AggregateState | None = None, **kwargs):
    decisions = []
    for cmd in commands:
        decision = decide_append(state, cmd, reducers=ReducerRegistry(), **kwargs)
        decisions.append(decision)
        state = decision.state
    return state, decisions


def test_first_append_creates_version_1_with_folded_state():
    decision = decide_append(None, command("e1", {"email": "a@x"}, NO_STREAM),
                             reducers=ReducerRegistry())
    assert decision.outcome is AppendOutcome.ACCEPTED
    assert decision.version == 1
    assert decision.state.version == 1
    assert decision.state.state == {"email": "a@x"}
    assert decision.state.last_event_timestamp == T0
    assert decision.event is not None and decision.event.version == 1
    assert decision.event.tenant_id == "t1"


def test_versions_increase_by_one_and_state_merges():
    state, decisions = append_all(command("e1", {"a": 1}), command("e2", {"b": 2}),
                                  command("e3", {"a": None}))
    assert [d.version for d in decisions] == [1, 2, 3]
    assert state.state == {"b": 2}


@pytest.mark.parametrize(
    ("expected", "current_version", "accepted"),
    [
        (NO_STREAM, 0, True), (NO_STREAM, 2, False),
        (STREAM_EXISTS, 0, False), (STREAM_EXISTS, 2, True),
        (ANY, 0, True), (ANY, 2, True),
        (ExpectedVersion.exact(2), 2, True), (ExpectedVersion.exact(1), 2, False),
        (ExpectedVersion.exact(3), 2, False), (ExpectedVersion.exact(0), 0, True),
    ],
)
def test_every_expected_version_form(expected, current_version, accepted):
    state, _ = append_all(*(command(f"pre{i}") for i in range(current_version)))
    decision = decide_append(state, command("new", {"x": 1}, expected), reducers=ReducerRegistry())
    if accepted:
        assert decision.outcome is AppendOutcome.ACCEPTED
        assert decision.version == current_version + 1
    else:
        assert decision.outcome is AppendOutcome.CONFLICT
        assert decision.version == current_version
        assert decision.state.version == current_version  # nothing changed
        assert isinstance(decision.conflict, VersionConflict)
        assert decision.conflict.current_version == current_version
        assert decision.conflict.http_status == 409
        with pytest.raises(VersionConflict):
            decision.raise_for_conflict()


def test_retried_append_returns_original_version_even_if_expectation_no_longer_holds():
    state, _ = append_all(command("e1", {"a": 1}, NO_STREAM), command("e2", {"a": 2}))
    retry = decide_append(state, command("e1", {"a": 1}, NO_STREAM), reducers=ReducerRegistry())
    assert retry.outcome is AppendOutcome.DUPLICATE
    assert retry.succeeded and not retry.accepted
    assert retry.version == 1
    assert retry.event is None
    assert retry.state == state  # not applied twice
    assert retry.raise_for_conflict() is retry


def test_recent_event_ids_are_bounded_and_older_ids_are_forgotten():
    state, _ = append_all(*(command(f"e{i}") for i in range(1, 6)), recent_ids_limit=3)
    assert [eid for eid, _ in state.recent_event_ids] == ["e3", "e4", "e5"]
    assert decide_append(state, command("e3"), reducers=ReducerRegistry()).version == 3
    forgotten = decide_append(state, command("e1"), reducers=ReducerRegistry(),
                              recent_ids_limit=3)
    assert forgotten.outcome is AppendOutcome.ACCEPTED and forgotten.version == 6


def test_timestamps_never_go_backwards():
    state, decisions = append_all(command("e1", at=T0), command("e2", at=T0 - timedelta(hours=1)))
    assert decisions[1].event.timestamp == T0
    assert state.last_event_timestamp == T0


def test_type_mismatch_with_existing_aggregate_is_a_conflict():
    state, _ = append_all(command("e1"))
    with pytest.raises(Conflict) as info:
        decide_append(state, command("e2", aggregate_type="Order"), reducers=ReducerRegistry())
    assert not isinstance(info.value, VersionConflict)


def test_state_record_round_trips_through_dict():
    state, _ = append_all(command("e1", {"a": {"b": [1, 2]}}), command("e2", {"c": "x"}))
    assert AggregateState.from_dict(state.to_dict()) == state
