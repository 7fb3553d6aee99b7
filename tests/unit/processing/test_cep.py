"""CEP patterns against brute-force references over random, out-of-order event sequences."""

from __future__ import annotations

import json
from collections import defaultdict
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esb.errors import ValidationFailed
from esb.processing.cep import PatternEngine, parse_pattern

SETTINGS = settings(max_examples=200, deadline=None)
TYPES = ["A", "B", "C"]


# -- shared reference plumbing -------------------------------------------------------------

def accepted_in_order(pattern: Any, events: list[dict[str, Any]], final_time: int,
                      relevant_types: set[str] | None
                      ) -> tuple[dict[str, list[dict[str, Any]]], list[str], int]:
    """Non-late relevant events per key in (time, arrival) order, late ids, final watermark."""
    grace = pattern.grace_period_ms
    now: int | None = None
    accepted: list[tuple[int, int, dict[str, Any]]] = []
    late: list[str] = []
    for arrival, event in enumerate(events):
        relevant = relevant_types is None or event["event_type"] in relevant_types
        ts = event["timestamp"]
        if now is not None and ts < now - grace:
            if relevant:
                late.append(event["event_id"])
            continue
        now = ts if now is None else max(now, ts)
        if relevant:
            accepted.append((ts, arrival, event))
    watermark = max(now, final_time) - grace
    per_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ts, _, event in sorted(accepted, key=lambda item: item[:2]):
        if ts <= watermark:  # released to the pattern
            per_key[event["correlation_id"]].append(event)
    return per_key, late, watermark


def ref_sequence(pattern: Any, ordered: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    steps, within = pattern.event_types, pattern.within_ms
    matches, boundary = [], -1
    for end in range(len(ordered)):
        candidates = []
        for start in range(boundary + 1, end + 1):
            if ordered[start]["event_type"] != steps[0]:
                continue
            chain, position = [start], start
            for step in steps[1:]:
                position = next((q for q in range(position + 1, end + 1)
                                 if ordered[q]["event_type"] == step), -1)
                if position < 0:
                    break
                chain.append(position)
            if len(chain) == len(steps) and chain[-1] == end and \
                    ordered[end]["timestamp"] - ordered[start]["timestamp"] <= within:
                candidates.append(chain)
        if candidates:
            matches.append([ordered[i] for i in candidates[0]])
            boundary = end
    return [tuple(e["event_id"] for e in m) for m in matches]


def ref_threshold(pattern: Any, ordered: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    matches, boundary = [], -1
    for end in range(len(ordered)):
        window = [ordered[i] for i in range(boundary + 1, end + 1)
                  if ordered[end]["timestamp"] - ordered[i]["timestamp"] <= pattern.within_ms]
        if len(window) >= pattern.min_count:
            matches.append(tuple(e["event_id"] for e in window))
            boundary = end
    return matches


def ref_absence(pattern: Any, ordered: list[dict[str, Any]],
                watermark: int) -> list[tuple[Any, ...]]:
    matches = []
    for i, trigger in enumerate(ordered):
        if trigger["event_type"] != pattern.trigger_event_type:
            continue
        deadline = trigger["timestamp"] + pattern.within_ms
        answered = any(later["event_type"] == pattern.expected_event_type
                       and later["timestamp"] <= deadline for later in ordered[i + 1:])
        if not answered and deadline < watermark:
            matches.append((trigger["event_id"],))
    return matches


def ref_anomaly(pattern: Any, ordered: list[dict[str, Any]],
                watermark: int) -> list[tuple[Any, ...]]:
    size, history_len = pattern.bucket_ms, pattern.history_buckets
    buckets: dict[int, list[str]] = defaultdict(list)
    for event in ordered:
        buckets[event["timestamp"] // size * size].append(event["event_id"])
    matches: list[tuple[Any, ...]] = []
    bucket = min(buckets) if buckets else None
    history: list[int] = []
    mean: float | None = None
    var, seen, idle = 0.0, 0, 0
    while bucket is not None and bucket + size <= watermark:
        ids = buckets.get(bucket, [])
        x = len(ids)
        anomalous = False
        if pattern.method == "zscore":
            if len(history) >= pattern.required_history:
                mu = Fraction(sum(history), len(history))
                variance = sum((Fraction(h) - mu) ** 2 for h in history) / len(history)
                anomalous = (x - mu) ** 2 > Fraction(pattern.threshold) ** 2 * variance
            history = [*history, x][-history_len:]
        else:
            if mean is None:
                mean, var = float(x), 0.0
            else:
                d = x - mean
                anomalous = seen >= pattern.required_history and \
                    d * d > pattern.threshold ** 2 * var
                mean += pattern.alpha * d
                var = (1 - pattern.alpha) * (var + pattern.alpha * d * d)
            seen += 1
        if anomalous:
            matches.append((tuple(ids), bucket, x))
        idle = idle + 1 if x == 0 else 0
        if idle >= history_len:  # forgotten: restart at the next event's bucket
            later = [b for b in buckets if b > bucket]
            bucket = min(later) if later else None
            history, mean, var, seen, idle = [], None, 0.0, 0, 0
        else:
            bucket += size
    return matches


def reference(pattern: Any, events: list[dict[str, Any]],
              final_time: int) -> tuple[list[tuple[Any, ...]], list[str]]:
    if pattern.kind == "sequence":
        types: set[str] | None = set(pattern.event_types)
    elif pattern.kind == "threshold":
        types = {pattern.event_type}
    elif pattern.kind == "absence":
        types = {pattern.trigger_event_type, pattern.expected_event_type}
    else:
        types = None if pattern.event_type is None else {pattern.event_type}
    per_key, late, watermark = accepted_in_order(pattern, events, final_time, types)
    found = []
    for key, ordered in per_key.items():
        if pattern.kind == "sequence":
            found += [(key, ids) for ids in ref_sequence(pattern, ordered)]
        elif pattern.kind == "threshold":
            found += [(key, ids) for ids in ref_threshold(pattern, ordered)]
        elif pattern.kind == "absence":
            found += [(key, ids) for ids in ref_absence(pattern, ordered, watermark)]
        else:
            found += [(key, *m) for m in ref_anomaly(pattern, ordered, watermark)]
    return sorted(found), late


def summary(match: dict[str, Any]) -> tuple[Any, ...]:
    ids = tuple(match["matched_event_ids"])
    if match["kind"] == "anomaly":
        return (match["key"], ids, match["details"]["bucket_start"], match["details"]["count"])
    return (match["key"], ids)


def run(pattern: Any, events: list[dict[str, Any]],
        final_time: int) -> tuple[list[dict[str, Any]], list[str]]:
    engine = PatternEngine(pattern)
    state = engine.new_state()
    matches: list[dict[str, Any]] = []
    late: list[str] = []
    for offset, event in enumerate(events):
        step = engine.process(state, event, partition=0, offset=offset)
        matches += step.outputs
        late += [item["event_id"] for item in step.late]
    matches += engine.advance_time(state, final_time).outputs
    return matches, late


# -- strategies ------------------------------------------------------------------------------

@st.composite
def event_sequences(draw: st.DrawFn) -> list[dict[str, Any]]:
    # Dense times make exact boundary hits (ts == deadline, span == within) common.
    low, high = draw(st.sampled_from([(-3, 3), (-6, 6), (-30, 20)]))
    deltas = draw(st.lists(st.integers(low, high), min_size=1, max_size=40))
    ts, events = 1000, []
    for i, delta in enumerate(deltas):
        ts = max(0, ts + delta)
        events.append({"event_id": f"e{i}", "timestamp": ts,
                       "event_type": draw(st.sampled_from(TYPES)),
                       "correlation_id": draw(st.sampled_from(["k1", "k2"])), "payload": {}})
    return events


grace = st.integers(0, 15)
within = st.one_of(st.integers(1, 6), st.integers(1, 40))
PATTERNS = dict(zip(["sequence", "threshold", "absence", "anomaly"], (
    st.builds(lambda types, within, g: parse_pattern({
        "kind": "sequence", "pattern_id": "p", "event_types": types, "within_ms": within,
        "grace_period_ms": g}),
        st.lists(st.sampled_from(TYPES), min_size=2, max_size=3), within, grace),
    st.builds(lambda t, n, within, g: parse_pattern({
        "kind": "threshold", "pattern_id": "p", "event_type": t, "min_count": n,
        "within_ms": within, "grace_period_ms": g}),
        st.sampled_from(TYPES), st.integers(1, 4), within, grace),
    st.builds(lambda a, b, within, g: parse_pattern({
        "kind": "absence", "pattern_id": "p", "trigger_event_type": a,
        "expected_event_type": b, "within_ms": within, "grace_period_ms": g}),
        st.sampled_from(TYPES), st.sampled_from(TYPES), within, grace),
    st.integers(2, 5).flatmap(lambda k: st.builds(
        lambda t, bucket, method, minimum, threshold, alpha, g: parse_pattern({
            "kind": "anomaly", "pattern_id": "p", "event_type": t, "bucket_ms": bucket,
            "method": method, "history_buckets": k, "min_history": minimum,
            "threshold": threshold, "alpha": alpha, "grace_period_ms": g}),
        st.sampled_from([None, "A"]), st.integers(1, 15), st.sampled_from(["zscore", "ewma"]),
        st.integers(1, k), st.sampled_from([0.5, 1.0, 1.5, 2.0]),
        st.sampled_from([0.25, 0.5, 1.0]), grace)),
), strict=True))
KINDS = pytest.mark.parametrize("kind", list(PATTERNS))


@KINDS
@SETTINGS
@given(events=event_sequences(), tail=st.integers(0, 100), data=st.data())
def test_patterns_match_brute_force_reference(kind: str, events: list[dict[str, Any]],
                                             tail: int, data: st.DataObject) -> None:
    pattern = data.draw(PATTERNS[kind])
    final_time = max(e["timestamp"] for e in events) + tail
    matches, late = run(pattern, events, final_time)
    assert (sorted(summary(m) for m in matches), late) == reference(pattern, events, final_time)


@KINDS
@SETTINGS
@given(events=event_sequences(), data=st.data())
def test_restart_from_snapshot_with_replay_gives_identical_matches(
        kind: str, events: list[dict[str, Any]], data: st.DataObject) -> None:
    pattern = data.draw(PATTERNS[kind])
    engine = PatternEngine(pattern)
    final_time = max(e["timestamp"] for e in events) + 50
    expected = run(pattern, events, final_time)
    snapshot_at = data.draw(st.integers(0, len(events)))
    replay_from = data.draw(st.integers(0, snapshot_at))
    state = engine.new_state()
    matches: list[dict[str, Any]] = []
    late: list[str] = []
    snapshot = json.dumps(state)
    for offset, event in enumerate(events[:snapshot_at]):
        step = engine.process(state, event, partition=0, offset=offset)
        matches += step.outputs
        late += [item["event_id"] for item in step.late]
    snapshot = json.dumps(state)
    for offset, event in enumerate(events[snapshot_at:], start=snapshot_at):  # then "crash"
        engine.process(state, event, partition=0, offset=offset)
    restored = json.loads(snapshot)
    for offset in range(replay_from, len(events)):
        step = engine.process(restored, events[offset], partition=0, offset=offset)
        assert step.duplicate == (offset < snapshot_at)
        matches += step.outputs
        late += [item["event_id"] for item in step.late]
    matches += engine.advance_time(restored, final_time).outputs
    assert (matches, late) == expected


# -- examples --------------------------------------------------------------------------------

def event(event_id: str, event_type: str, ts: int, key: str = "k",
          **payload: Any) -> dict[str, Any]:
    return {"event_id": event_id, "event_type": event_type, "timestamp": ts,
            "correlation_id": key, "payload": payload}


def test_sequence_emits_match_dict_with_ids_in_order() -> None:
    engine = PatternEngine(parse_pattern({"kind": "sequence", "pattern_id": "checkout",
                                          "event_types": ["A", "B", "C"], "within_ms": 100}))
    state = engine.new_state()
    outputs = []
    for e in [event("1", "A", 0), event("2", "X", 5), event("3", "B", 10), event("4", "C", 20)]:
        outputs += engine.process(state, e).outputs
    assert outputs == [{
        "pattern_id": "checkout", "kind": "sequence", "key": "k",
        "matched_event_ids": ["1", "3", "4"], "first_timestamp": 0, "last_timestamp": 20,
        "details": {"event_types": ["A", "B", "C"], "within_ms": 100},
    }]
    assert state["keys"] == {}


def test_absence_fires_on_time_advance_without_further_events() -> None:
    engine = PatternEngine(parse_pattern({
        "kind": "absence", "pattern_id": "pay", "trigger_event_type": "order.placed",
        "expected_event_type": "payment.received", "within_ms": 1000,
        "key_field": "aggregate_id"}))
    state = engine.new_state()
    placed = {"event_id": "o1", "event_type": "order.placed", "aggregate_id": "ord-1",
              "timestamp": "2025-01-26T10:30:00.000Z", "payload": {}}
    assert engine.process(state, placed).outputs == []
    start = engine.correlation_key(placed)
    assert start == "ord-1"
    at_deadline = engine.advance_time(state, 1737887400000 + 1000).outputs
    assert at_deadline == []  # a payment stamped exactly at the deadline may still arrive
    [alert] = engine.advance_time(state, 1737887400000 + 1001).outputs
    assert alert["matched_event_ids"] == ["o1"] and alert["key"] == "ord-1"
    assert alert["details"]["deadline"] == 1737887401000


def test_threshold_condition_filters_events() -> None:
    engine = PatternEngine(parse_pattern({
        "kind": "threshold", "pattern_id": "big", "event_type": "A", "min_count": 2,
        "within_ms": 50, "condition": "payload.amount > 100"}))
    state = engine.new_state()
    out = []
    for e in [event("1", "A", 0, amount=500), event("2", "A", 1, amount=5),
              event("3", "A", 2, amount=900)]:
        out += engine.process(state, e).outputs
    assert [m["matched_event_ids"] for m in out] == [["1", "3"]]


def test_anomaly_flags_a_burst() -> None:
    engine = PatternEngine(parse_pattern({
        "kind": "anomaly", "pattern_id": "rate", "bucket_ms": 10, "history_buckets": 3,
        "threshold": 2.0}))
    state = engine.new_state()
    events = [event(f"b{i}", "A", t) for i, t in enumerate([0, 10, 11, 20, 30])]
    events += [event(f"s{i}", "A", 40 + i) for i in range(8)]
    for e in events:
        assert engine.process(state, e).outputs == []
    [alarm] = engine.advance_time(state, 50).outputs
    assert alarm["details"]["count"] == 8 and alarm["details"]["bucket_start"] == 40
    assert alarm["matched_event_ids"] == [f"s{i}" for i in range(8)]


def test_out_of_order_within_grace_is_reordered() -> None:
    engine = PatternEngine(parse_pattern({"kind": "sequence", "pattern_id": "p",
                                          "event_types": ["A", "B"], "within_ms": 100,
                                          "grace_period_ms": 10}))
    state = engine.new_state()
    assert engine.process(state, event("b", "B", 5)).outputs == []
    assert engine.process(state, event("a", "A", 1)).outputs == []  # earlier, within grace
    [match] = engine.advance_time(state, 20).outputs
    assert match["matched_event_ids"] == ["a", "b"]
    late = engine.process(state, event("old", "A", 2)).late
    assert [item["event_id"] for item in late] == ["old"]


def test_bad_pattern_definitions_are_rejected_with_paths() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_pattern({"kind": "sequence", "pattern_id": "p", "event_types": ["A"],
                       "within_ms": 0, "condition": "payload.x =="})
    paths = {error["path"] for error in info.value.errors}
    assert paths == {"event_types", "within_ms", "condition"}
    with pytest.raises(ValidationFailed):
        parse_pattern({"kind": "telepathy", "pattern_id": "p"})
    with pytest.raises(ValidationFailed) as info:
        parse_pattern({"kind": "anomaly", "pattern_id": "p", "bucket_ms": 10, "threshold": -1})
    assert [error["path"] for error in info.value.errors] == ["threshold"]


def test_sequence_later_start_survives_when_earlier_run_expires() -> None:
    """Every A starts a run: A1 expires before B, but A2 → B is within T."""
    pattern = parse_pattern({"kind": "sequence", "pattern_id": "p",
                             "event_types": ["A", "B"], "within_ms": 40})
    events = [event("a1", "A", 0), event("a2", "A", 30), event("b", "B", 45)]
    matches, _ = run(pattern, events, 100)
    assert [m["matched_event_ids"] for m in matches] == [["a2", "b"]]
    assert sorted(summary(m) for m in matches) == reference(pattern, events, 100)[0]


def test_sequence_earliest_start_wins_and_consumes_all_runs() -> None:
    pattern = parse_pattern({"kind": "sequence", "pattern_id": "p",
                             "event_types": ["A", "B"], "within_ms": 40})
    events = [event("a1", "A", 0), event("a2", "A", 5), event("b1", "B", 10),
              event("b2", "B", 11)]
    matches, _ = run(pattern, events, 100)
    assert [m["matched_event_ids"] for m in matches] == [["a1", "b1"]]  # a2 is discarded
