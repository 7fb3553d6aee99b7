"""Windows against a brute-force reference over random, out-of-order event sequences."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esb.errors import ValidationFailed
from esb.processing.aggregates import SumAccumulator
from esb.processing.windows import WindowedAggregator, WindowSpec, assign_windows

SETTINGS = settings(max_examples=200, deadline=None)


# -- reference -----------------------------------------------------------------------------

def brute_windows(spec: WindowSpec, ts: int) -> list[tuple[int, int]]:
    """Every [s, s+size) with s a multiple of advance containing ts, by enumeration."""
    advance = spec.advance_ms if spec.kind == "hopping" else spec.size_ms
    first = ((ts - spec.size_ms) // advance) * advance
    return [(s, s + spec.size_ms) for s in range(first, ts + 1, advance)
            if s <= ts < s + spec.size_ms]


def brute_sessions(events: list[tuple[int, int, str, int]], gap: int) -> list[dict[str, Any]]:
    """Sessions recomputed from scratch: sort, then chain while covers overlap."""
    sessions: list[dict[str, Any]] = []
    for ts, seq, event_id, value in sorted(events):
        if sessions and ts < sessions[-1]["last"] + gap:
            sessions[-1]["last"] = max(sessions[-1]["last"], ts)
            sessions[-1]["members"].append((ts, seq, event_id, value))
        else:
            sessions.append({"start": ts, "last": ts, "members": [(ts, seq, event_id, value)]})
    for session in sessions:
        session["end"] = session["last"] + gap
    return sessions


def reference(spec: WindowSpec, events: list[tuple[str, int, int]],
              final_time: int) -> tuple[list[tuple[Any, ...]], list[str]]:
    """Closed windows (in emission order) and late event ids, by definition, slowly."""
    grace = spec.grace_ms
    now: int | None = None
    members: dict[tuple[str, int, int], list[tuple[int, int, str, int]]] = defaultdict(list)
    accepted: dict[str, list[tuple[int, int, str, int]]] = defaultdict(list)
    emitted: set[tuple[str, int, int]] = set()
    results: list[tuple[Any, ...]] = []
    late: list[str] = []

    def emit_closed() -> None:
        closed = []
        if spec.kind == "session":
            for key, events_of_key in accepted.items():
                for session in brute_sessions(events_of_key, spec.gap_ms):
                    ident = (key, session["start"], session["end"])
                    if ident not in emitted and session["end"] + grace <= now:
                        emitted.add(ident)
                        closed.append((ident, session["members"]))
        else:
            for ident, window_members in members.items():
                if ident not in emitted and ident[2] + grace <= now:
                    emitted.add(ident)
                    closed.append((ident, window_members))
        for (key, start, end), window_members in sorted(
                closed, key=lambda c: (c[0][2], c[0][1], c[0][0])):
            ordered = sorted(window_members, key=lambda m: m[1])
            results.append((key, start, end, len(ordered), [m[2] for m in ordered],
                            sum(m[3] for m in ordered)))

    for seq, (key, ts, value) in enumerate(events):
        event_id = f"e{seq}"
        now = ts if now is None else max(now, ts)
        item = (ts, seq, event_id, value)
        if spec.kind == "session":
            sessions = brute_sessions([*accepted[key], item], spec.gap_ms)
            mine = next(s for s in sessions if item in s["members"])
            closed_ends = [end for (k, _, end) in emitted if k == key]
            is_late = (bool(closed_ends) and ts < max(closed_ends)) or \
                mine["end"] + grace <= now
            if not is_late:
                accepted[key].append(item)
        else:
            open_windows = [w for w in brute_windows(spec, ts) if w[1] + grace > now]
            is_late = not open_windows
            for start, end in open_windows:
                members[(key, start, end)].append(item)
        if is_late:
            late.append(event_id)
        emit_closed()
    now = max(now, final_time) if now is not None else final_time
    emit_closed()
    return results, late


# -- system under test -----------------------------------------------------------------------

def as_tuple(result: dict[str, Any]) -> tuple[Any, ...]:
    return (result["key"], result["window_start"], result["window_end"], result["event_count"],
            result["input_event_ids"], result["value"])


def run(spec: WindowSpec, events: list[tuple[str, int, int]],
        final_time: int) -> tuple[list[tuple[Any, ...]], list[str]]:
    aggregator = WindowedAggregator(spec, SumAccumulator(), max_input_ids=10_000)
    state = aggregator.new_state()
    results: list[tuple[Any, ...]] = []
    late: list[str] = []
    for seq, (key, ts, value) in enumerate(events):
        step = aggregator.ingest(state, key, f"e{seq}", ts, value, partition=0, offset=seq)
        results.extend(as_tuple(r) for r in step.outputs)
        late.extend(item["event_id"] for item in step.late)
    results.extend(as_tuple(r) for r in aggregator.advance(state, final_time).outputs)
    return results, late


# -- strategies ------------------------------------------------------------------------------

@st.composite
def event_sequences(draw: st.DrawFn) -> list[tuple[str, int, int]]:
    """Mostly advancing times with jitter backwards, so some events are out of order or late."""
    # Small steps make exact boundary hits (t + gap + grace == now, …) common.
    low, high = draw(st.sampled_from([(-8, 6), (-40, 25)]))
    deltas = draw(st.lists(st.integers(low, high), min_size=1, max_size=40))
    keys = draw(st.lists(st.sampled_from(["a", "b"]), min_size=len(deltas),
                         max_size=len(deltas)))
    values = draw(st.lists(st.integers(-5, 9), min_size=len(deltas), max_size=len(deltas)))
    ts, events = 1000, []
    for delta, key, value in zip(deltas, keys, values, strict=True):
        ts = max(0, ts + delta)
        events.append((key, ts, value))
    return events


window_specs = st.one_of(
    st.builds(lambda size, grace: WindowSpec("tumbling", size_ms=size, grace_ms=grace),
              st.integers(1, 30), st.integers(0, 20)),
    st.integers(1, 30).flatmap(lambda size: st.builds(
        lambda advance, grace: WindowSpec("hopping", size_ms=size, advance_ms=advance,
                                          grace_ms=grace),
        st.integers(1, size), st.integers(0, 20))),
    st.builds(lambda gap, grace: WindowSpec("session", gap_ms=gap, grace_ms=grace),
              st.integers(1, 20), st.integers(0, 20)),
)


@SETTINGS
@given(spec=window_specs, events=event_sequences(), tail=st.integers(0, 200))
def test_windows_match_brute_force_reference(spec: WindowSpec,
                                            events: list[tuple[str, int, int]],
                                            tail: int) -> None:
    final_time = max(ts for _, ts, _ in events) + tail
    assert run(spec, events, final_time) == reference(spec, events, final_time)


@SETTINGS
@given(spec=window_specs, events=event_sequences(), data=st.data())
def test_restart_from_snapshot_with_replay_gives_identical_results(
        spec: WindowSpec, events: list[tuple[str, int, int]], data: st.DataObject) -> None:
    """Snapshot at j, keep going to k, crash, restore j, replay from j - r: same final output."""
    aggregator = WindowedAggregator(spec, SumAccumulator(), max_input_ids=10_000)
    final_time = max(ts for _, ts, _ in events) + 500
    expected, expected_late = run(spec, events, final_time)

    snapshot_at = data.draw(st.integers(0, len(events)))
    replay_from = data.draw(st.integers(0, snapshot_at))
    state = aggregator.new_state()
    results: list[tuple[Any, ...]] = []
    late: list[str] = []
    snapshot = json.dumps(state)
    for seq, (key, ts, value) in enumerate(events):
        if seq == snapshot_at:
            snapshot = json.dumps(state)
        step = aggregator.ingest(state, key, f"e{seq}", ts, value, partition=0, offset=seq)
        if seq < snapshot_at:
            results.extend(as_tuple(r) for r in step.outputs)
            late.extend(item["event_id"] for item in step.late)
    if snapshot_at == len(events):
        snapshot = json.dumps(state)

    restored = json.loads(snapshot)
    for seq in range(replay_from, len(events)):
        key, ts, value = events[seq]
        step = aggregator.ingest(restored, key, f"e{seq}", ts, value, partition=0, offset=seq)
        assert step.duplicate == (seq < snapshot_at)
        results.extend(as_tuple(r) for r in step.outputs)
        late.extend(item["event_id"] for item in step.late)
    results.extend(as_tuple(r) for r in aggregator.advance(restored, final_time).outputs)
    assert (results, late) == (expected, expected_late)


# -- examples --------------------------------------------------------------------------------

def test_assigner_tumbling_and_hopping() -> None:
    assert assign_windows(WindowSpec("tumbling", size_ms=10), 25) == [(20, 30)]
    assert assign_windows(WindowSpec("tumbling", size_ms=10), -1) == [(-10, 0)]
    hopping = WindowSpec("hopping", size_ms=10, advance_ms=5)
    assert assign_windows(hopping, 12) == [(5, 15), (10, 20)]
    assert assign_windows(hopping, 10) == [(5, 15), (10, 20)]
    assert assign_windows(WindowSpec("session", gap_ms=7), 3) == [(3, 10)]


def test_session_bridging_event_merges_two_sessions() -> None:
    aggregator = WindowedAggregator(WindowSpec("session", gap_ms=10, grace_ms=100),
                                    SumAccumulator())
    state = aggregator.new_state()
    aggregator.ingest(state, "k", "a", 0, 1)
    aggregator.ingest(state, "k", "b", 18, 2)  # separate: 18 >= 0 + 10
    assert len(state["keys"]["k"]["windows"]) == 2
    aggregator.ingest(state, "k", "c", 9, 4)  # covers [9, 19): touches both
    [merged] = state["keys"]["k"]["windows"]
    assert (merged["start"], merged["end"], merged["count"]) == (0, 28, 3)
    out = aggregator.advance(state, 128).outputs
    assert [(r["window_start"], r["window_end"], r["value"], r["input_event_ids"])
            for r in out] == [(0, 28, 7, ["a", "b", "c"])]
    assert state["keys"]["k"]["windows"] == []
    assert state["keys"]["k"]["closed_until"] == 28  # an event at t < 28 would now be late
    assert aggregator.ingest(state, "k", "d", 20, 1).late
    aggregator.advance(state, 138)  # 28 + gap + grace: nothing can reach the old session
    assert state["keys"] == {}


def test_late_event_is_reported_and_not_counted() -> None:
    aggregator = WindowedAggregator(WindowSpec("tumbling", size_ms=10, grace_ms=5),
                                    SumAccumulator())
    state = aggregator.new_state()
    aggregator.ingest(state, "k", "a", 1, 1)
    closed = aggregator.ingest(state, "k", "b", 15, 1).outputs  # 15 >= 10 + 5: closes [0,10)
    assert [(r["window_start"], r["value"]) for r in closed] == [(0, 1)]
    step = aggregator.ingest(state, "k", "late", 2, 100, partition=3, offset=7)
    assert step.outputs == []
    assert step.late == [{"key": "k", "event_id": "late", "timestamp": 2, "partition": 3,
                          "offset": 7, "reason": "window_closed"}]
    within_grace = aggregator.ingest(state, "k", "ok", 12, 1)
    assert within_grace.late == []


def test_duplicate_offsets_are_skipped() -> None:
    aggregator = WindowedAggregator(WindowSpec("tumbling", size_ms=10), SumAccumulator())
    state = aggregator.new_state()
    assert not aggregator.ingest(state, "k", "a", 1, 5, partition=0, offset=10).duplicate
    assert aggregator.ingest(state, "k", "a", 1, 5, partition=0, offset=10).duplicate
    assert not aggregator.ingest(state, "k", "b", 2, 5, partition=1, offset=10).duplicate
    out = aggregator.advance(state, 10).outputs
    assert [r["value"] for r in out] == [10]


def test_input_ids_are_bounded_and_flagged() -> None:
    aggregator = WindowedAggregator(WindowSpec("tumbling", size_ms=100), SumAccumulator(),
                                    max_input_ids=2)
    state = aggregator.new_state()
    for i in range(5):
        aggregator.ingest(state, "k", f"e{i}", i, 1)
    [result] = aggregator.advance(state, 100).outputs
    assert result["input_event_ids"] == ["e0", "e1"]
    assert result["input_event_ids_truncated"] is True
    assert result["event_count"] == 5


@pytest.mark.parametrize("kwargs", [
    {"kind": "tumbling", "size_ms": 0},
    {"kind": "hopping", "size_ms": 10, "advance_ms": 11},
    {"kind": "session", "gap_ms": 0},
    {"kind": "tumbling", "size_ms": 10, "grace_ms": -1},
])
def test_bad_specs_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed):
        WindowSpec(**kwargs)


def test_session_whose_end_plus_grace_is_now_is_late() -> None:
    """Boundary: a window closes AT end + grace, so an event landing exactly there is late."""
    spec = WindowSpec("session", gap_ms=10, grace_ms=0)
    aggregator = WindowedAggregator(spec, SumAccumulator())
    state = aggregator.new_state()
    aggregator.ingest(state, "k", "a", 100, 1)
    step = aggregator.ingest(state, "k", "b", 90, 1)  # [90, 100) closes at 100 == now
    assert [item["event_id"] for item in step.late] == ["b"]
    assert step.outputs == []
    events = [("k", 100, 1), ("k", 90, 1)]
    assert run(spec, events, 200) == reference(spec, events, 200)


def test_event_reaching_into_a_closed_session_is_late_even_if_it_bridges_an_open_one() -> None:
    spec = WindowSpec("session", gap_ms=10, grace_ms=5)
    aggregator = WindowedAggregator(spec, SumAccumulator())
    state = aggregator.new_state()
    aggregator.ingest(state, "k", "a", 0, 1)
    closed = aggregator.ingest(state, "k", "b", 15, 1).outputs  # closes [0, 10)
    assert [(r["window_start"], r["window_end"]) for r in closed] == [(0, 10)]
    step = aggregator.ingest(state, "k", "c", 8, 1)  # [8, 18) touches closed [0,10) and [15,25)
    assert [item["event_id"] for item in step.late] == ["c"]
    [open_session] = state["keys"]["k"]["windows"]
    assert (open_session["start"], open_session["count"]) == (15, 1)
    events = [("k", 0, 1), ("k", 15, 1), ("k", 8, 1)]
    assert run(spec, events, 200) == reference(spec, events, 200)
