from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esb.errors import ConfigurationError, ValidationFailed
from esb.sourcing import (
    ANY,
    AppendCommand,
    ReducerRegistry,
    Snapshot,
    SnapshotPolicy,
    SourcedEvent,
    StreamGap,
    choose_snapshot,
    decide_append,
    reconstruct,
)

T0 = datetime(2025, 1, 26, 10, 0, tzinfo=UTC)
REGISTRY = ReducerRegistry()


def build_stream(patches: list[dict]) -> list[SourcedEvent]:
    """Append through decide_append so the stream is what an owner would produce."""
    state, events = None, []
    for i, patch in enumerate(patches):
        decision = decide_append(state, AppendCommand(
            event_id=f"e{i}", aggregate_id="u1", aggregate_type="User", event_type="user.updated",
            data=patch, timestamp=T0 + timedelta(minutes=i), expected_version=ANY),
            reducers=REGISTRY)
        state = decision.state
        events.append(decision.event)
    return events


PATCHES = [{"name": "a"}, {"email": "a@x"}, {"name": "b", "tags": ["x"]},
           {"email": None}, {"address": {"city": "Oslo"}}, {"address": {"zip": "0150"}}]


def test_full_fold_matches_the_owners_incremental_state():
    events = build_stream(PATCHES)
    result = reconstruct("u1", "User", events, reducers=REGISTRY)
    assert result.current_version == 6
    assert result.events_applied == 6
    assert result.snapshot_version is None
    assert result.state == {"name": "b", "tags": ["x"], "address": {"city": "Oslo", "zip": "0150"}}
    assert result.last_event_timestamp == T0 + timedelta(minutes=5)


@pytest.mark.parametrize("at", [1, 3, 5, 6])
def test_snapshot_plus_later_events_equals_full_fold(at):
    events = build_stream(PATCHES)
    full = reconstruct("u1", "User", events, reducers=REGISTRY)
    snapshot = reconstruct("u1", "User", events, reducers=REGISTRY, as_of_version=at).to_snapshot()
    with_snapshot = reconstruct("u1", "User", events[at:], snapshot=snapshot, reducers=REGISTRY)
    assert with_snapshot.state == full.state
    assert with_snapshot.current_version == full.current_version
    assert with_snapshot.snapshot_version == at
    assert with_snapshot.events_applied == 6 - at
    # handing the whole stream with a snapshot skips the events it already covers
    assert reconstruct("u1", "User", events, snapshot=snapshot, reducers=REGISTRY).events_applied \
        == 6 - at


@settings(max_examples=100, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from("abcd"), st.none() | st.integers(0, 3),
                                max_size=3), min_size=1, max_size=12), st.data())
def test_snapshot_equivalence_property(patches, data):
    events = build_stream(patches)
    at = data.draw(st.integers(0, len(events)))
    snapshot = reconstruct("u1", "User", events, reducers=REGISTRY, as_of_version=at).to_snapshot()
    assert reconstruct("u1", "User", events[at:], snapshot=snapshot, reducers=REGISTRY).state == \
        reconstruct("u1", "User", events, reducers=REGISTRY).state


def test_state_as_of_version():
    events = build_stream(PATCHES)
    result = reconstruct("u1", "User", events, reducers=REGISTRY, as_of_version=2)
    assert result.current_version == 2
    assert result.state == {"name": "a", "email": "a@x"}
    assert result.last_event_timestamp == T0 + timedelta(minutes=1)
    assert reconstruct("u1", "User", events, reducers=REGISTRY, as_of_version=0).state == {}


def test_state_as_of_time_includes_events_at_that_instant():
    events = build_stream(PATCHES)
    result = reconstruct("u1", "User", events, reducers=REGISTRY,
                         as_of_time=T0 + timedelta(minutes=3))
    assert result.current_version == 4
    assert result.state == {"name": "b", "tags": ["x"]}
    before = reconstruct("u1", "User", events, reducers=REGISTRY,
                         as_of_time=T0 - timedelta(seconds=1))
    assert before.current_version == 0 and not before.exists


def test_snapshot_after_the_requested_point_is_ignored():
    events = build_stream(PATCHES)
    late = reconstruct("u1", "User", events, reducers=REGISTRY, as_of_version=5).to_snapshot()
    result = reconstruct("u1", "User", events, snapshot=late, reducers=REGISTRY, as_of_version=2)
    assert result.snapshot_version is None
    assert result.current_version == 2
    by_time = reconstruct("u1", "User", events, snapshot=late, reducers=REGISTRY,
                          as_of_time=T0 + timedelta(minutes=1))
    assert by_time.snapshot_version is None and by_time.current_version == 2


def test_missing_version_is_a_stream_gap():
    events = build_stream(PATCHES)
    with pytest.raises(StreamGap):
        reconstruct("u1", "User", [events[0], events[2]], reducers=REGISTRY)
    late = reconstruct("u1", "User", events, reducers=REGISTRY, as_of_version=5).to_snapshot()
    with pytest.raises(StreamGap):  # snapshot unusable, and the events don't start at 1
        reconstruct("u1", "User", events[5:], snapshot=late, reducers=REGISTRY, as_of_version=2)


def test_both_points_in_time_is_rejected():
    with pytest.raises(ValidationFailed):
        reconstruct("u1", "User", [], as_of_version=1, as_of_time=T0, reducers=REGISTRY)


def test_choose_snapshot_picks_latest_usable():
    snaps = [Snapshot("u1", "User", v, {}, T0 + timedelta(minutes=v)) for v in (100, 200, 300)]
    assert choose_snapshot(snaps).version == 300
    assert choose_snapshot(snaps, as_of_version=250).version == 200
    assert choose_snapshot(snaps, as_of_time=T0 + timedelta(minutes=150)).version == 100
    assert choose_snapshot(snaps, as_of_version=50) is None


def test_snapshot_policy_per_type():
    policy = SnapshotPolicy(default_every=100, per_type={"Order": 10, "Audit": 0})
    assert policy.is_due("User", 100) and not policy.is_due("User", 99)
    assert policy.is_due("User", 250, last_snapshot_version=150)
    assert not policy.is_due("User", 249, last_snapshot_version=150)
    assert policy.is_due("Order", 10) and not policy.is_due("Order", 9)
    assert not policy.is_due("Audit", 10_000)
    with pytest.raises(ConfigurationError):
        SnapshotPolicy(default_every=-1)


def test_snapshot_round_trips_through_dict():
    snap = Snapshot("u1", "User", 3, {"a": [1]}, T0, "t1")
    assert Snapshot.from_dict(snap.to_dict()) == snap
