"""The owner's storage logic over plain dicts: append, duplicates, snapshots, reconstruct."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from esb.errors import Conflict
from esb.sourcing import ANY, AppendCommand, AppendOutcome, ExpectedVersion, SnapshotPolicy
from esb.sourcing.commands import Delivery, OwnerCommand
from esb.sourcing.config import SourcingSettings, default_stream_name
from esb.sourcing.store import MAX_SNAPSHOTS_KEPT, AggregateStore, aggregate_key, snapshot_key

T0 = datetime(2025, 1, 26, 10, 30, tzinfo=UTC)


def store(every: int = 10) -> AggregateStore:
    return AggregateStore({}, {}, {}, policy=SnapshotPolicy(every))


def cmd(i: int, expected: ExpectedVersion = ANY, *, agg: str = "u1", event_id: str | None = None,
        aggregate_type: str = "User") -> AppendCommand:
    return AppendCommand(event_id=event_id or f"evt_{agg}_{i}", aggregate_id=agg,
                         aggregate_type=aggregate_type, event_type="user.updated",
                         data={"n": i, f"k{i % 3}": i}, timestamp=T0 + timedelta(seconds=i),
                         expected_version=expected, tenant_id="t1")


def test_append_stores_event_then_record_and_versions_are_contiguous() -> None:
    s = store()
    for i in range(1, 26):
        result = s.append(cmd(i, ExpectedVersion.exact(i - 1)))
        assert result.decision.outcome is AppendOutcome.ACCEPTED
        assert result.event is not None and result.event.version == i
    record = s.record("t1", "u1")
    assert record is not None and record.aggregate.version == 25
    assert [v for v, _ in record.snapshots] == [10, 20]
    assert [e.version for e in s.iter_events("t1", "u1", to_version=25)] == list(range(1, 26))


def test_conflict_and_duplicate_store_nothing_and_duplicate_returns_the_original() -> None:
    s = store()
    s.append(cmd(1))
    conflict = s.append(cmd(2, ExpectedVersion.exact(0)))
    assert conflict.decision.outcome is AppendOutcome.CONFLICT and conflict.event is None
    assert conflict.decision.version == 1
    duplicate = s.append(cmd(1, ExpectedVersion.exact(7)))
    assert duplicate.decision.outcome is AppendOutcome.DUPLICATE
    assert duplicate.event is not None and duplicate.event.event_id == "evt_u1_1"
    assert len(s.events) == 1
    with pytest.raises(Conflict):
        s.append(cmd(3, aggregate_type="Order"))


def test_tenants_do_not_share_aggregates() -> None:
    s = store()
    s.append(cmd(1))
    other = AppendCommand(event_id="evt_x", aggregate_id="u1", aggregate_type="User",
                          event_type="e", data={}, timestamp=T0,
                          expected_version=ExpectedVersion.parse("no_stream"), tenant_id="t2")
    assert s.append(other).decision.outcome is AppendOutcome.ACCEPTED
    assert aggregate_key("t1", "u1") in s.aggregates and aggregate_key("t2", "u1") in s.aggregates


def test_reconstruct_with_snapshot_equals_full_fold_and_reads_only_the_tail() -> None:
    s = store(every=10)
    for i in range(1, 38):
        s.append(cmd(i))
    with_snap = s.reconstruct("t1", "u1", "User")
    without = s.reconstruct("t1", "u1", "User", use_snapshots=False)
    assert with_snap.state == without.state and with_snap.current_version == 37
    assert with_snap.snapshot_version == 30 and with_snap.events_applied == 7
    assert without.events_applied == 37

    past = s.reconstruct("t1", "u1", "User", as_of_version=25)
    assert past.current_version == 25 and past.snapshot_version == 20
    assert past.state == s.reconstruct("t1", "u1", "User", as_of_version=25,
                                       use_snapshots=False).state
    by_time = s.reconstruct("t1", "u1", "User", as_of_time=T0 + timedelta(seconds=15.5))
    assert by_time.current_version == 15 and by_time.snapshot_version == 10
    missing = s.reconstruct("t1", "nobody", "User")
    assert missing.current_version == 0 and missing.state == {}


def test_take_snapshot_and_bounded_snapshot_index() -> None:
    s = store(every=0)
    s.append(cmd(1))
    assert s.take_snapshot("t1", "u1") == 1
    assert s.take_snapshot("t1", "u1") == 1  # already at the current version
    assert s.take_snapshot("t1", "nobody") is None
    s = store(every=1)
    for i in range(1, MAX_SNAPSHOTS_KEPT + 6):
        s.append(cmd(i))
    record = s.record("t1", "u1")
    assert record is not None and len(record.snapshots) == MAX_SNAPSHOTS_KEPT
    assert len(s.snapshots) == MAX_SNAPSHOTS_KEPT
    assert snapshot_key(aggregate_key("t1", "u1"), 1) not in s.snapshots


def test_owner_command_round_trips_through_json() -> None:
    import json

    original = OwnerCommand("append", "cmd_1", "t1", "u1", cmd(3, ExpectedVersion.parse(
        "stream_exists")), Delivery("esb.t1.es-user.normal", "es-user", "gzip", "HIGH", "svc"))
    again = OwnerCommand.from_dict(json.loads(json.dumps(original.to_dict())))
    assert again == original
    snap = OwnerCommand("snapshot", "cmd_2", "t1", "u1")
    assert OwnerCommand.from_dict(snap.to_dict()) == snap


@pytest.mark.parametrize(("aggregate_type", "stream"), [
    ("User", "es-user"), ("Shop.Order Line", "es-shop-order-line"), ("!!!", "es-aggregate"),
    ("X" * 100, "es-" + "x" * 60)])
def test_default_stream_name_is_a_valid_stream_name(aggregate_type: str, stream: str) -> None:
    from esb.topics import NAME_RE

    assert default_stream_name(aggregate_type) == stream
    assert NAME_RE.match(stream)


def test_sourcing_settings_read_the_per_type_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESB_SOURCING_SNAPSHOT_EVERY", "50")
    monkeypatch.setenv("ESB_SOURCING_SNAPSHOT_POLICY", '{"Order": 5}')
    policy = SourcingSettings().policy()
    assert policy.interval("Order") == 5 and policy.interval("User") == 50
