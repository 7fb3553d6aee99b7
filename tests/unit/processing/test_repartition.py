"""The re-key stage's copies are deduplicated exactly, whatever it re-emits after failures; the
progress reports give a stream time that waits for the slowest source."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from esb.processing.progress import drive_by_progress, observe_time, report_progress, watermark
from esb.processing.repartition import (
    Origin,
    mark_seen,
    parse_origin,
    parse_progress,
    progress_record,
    seen_before,
    with_origin,
)

# One poll of the re-key stage: how many records it reads per source, and how it ends:
# "ok" (acks, commit), "crash" (acks, no commit), or "fail@i" (copy i and every later copy to
# the same repartition partition not acknowledged... and some later ones to others are).
polls = st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6),
                           st.sampled_from(["ok", "crash", "fail"]), st.integers(0, 11)),
                 min_size=1, max_size=25)


def _simulate(plan: list[tuple[int, int, str, int]], keys: dict[tuple[int, int], int],
              sizes: tuple[int, int]) -> dict[int, list[Origin]]:
    """The repartition logs the re-key stage writes for ``plan`` (2 sources, 2 partitions)."""
    logs: dict[int, list[Origin]] = {0: [], 1: []}
    committed = [0, 0]
    for n0, n1, outcome, fail_at in plan:
        copies = []
        for source, count in ((0, n0), (1, n1)):
            floor = committed[source]
            for offset in range(floor, min(floor + count, sizes[source])):
                copies.append(Origin(f"t:{source}", source, offset, floor))
        lost_partition = None
        for index, origin in enumerate(copies):
            partition = keys[(origin.partition, origin.offset)]
            if outcome == "fail" and index == fail_at % max(1, len(copies)):
                lost_partition = partition  # this copy is not acknowledged...
                continue
            if outcome == "fail" and partition == lost_partition:
                continue  # ...nor later ones to the same partition (ordered per partition)
            logs[partition].append(origin)
        if outcome == "ok":
            for origin in copies:
                committed[origin.partition] = max(committed[origin.partition], origin.offset + 1)
    for source in (0, 1):  # finally the stage catches up without failures
        floor = committed[source]
        for offset in range(floor, sizes[source]):
            logs[keys[(source, offset)]].append(Origin(f"t:{source}", source, offset, floor))
    return logs


@settings(max_examples=300, deadline=None)
@given(polls, st.data())
def test_every_source_record_is_applied_exactly_once(plan, data) -> None:
    sizes = (sum(p[0] for p in plan), sum(p[1] for p in plan))
    keys = {(s, o): data.draw(st.integers(0, 1)) for s in (0, 1) for o in range(sizes[s])}
    applied: list[tuple[int, int]] = []
    for log in _simulate(plan, keys, sizes).values():
        origins: dict = {}
        for origin in log:
            if not seen_before(origins, origin):
                applied.append((origin.partition, origin.offset))
                mark_seen(origins, origin)
    expected = [(s, o) for s in (0, 1) for o in range(sizes[s])]
    assert sorted(applied) == expected


def test_seen_offsets_stay_bounded_by_one_poll() -> None:
    origins: dict = {}
    for floor in range(0, 10_000, 100):
        for offset in range(floor, floor + 100):
            mark_seen(origins, Origin("t", 0, offset, floor))
    assert len(origins["t:0"][1]) == 100


def test_origin_and_progress_headers_round_trip() -> None:
    origin = Origin("esb.t1.orders.normal", 3, 41, 40)
    headers = with_origin([("ce_id", b"e1"), ("esb-origin", b"old")], origin)
    assert parse_origin(headers) == origin
    assert [key for key, _ in headers].count("esb-origin") == 1
    assert parse_origin([("ce_id", b"e1")]) is None
    value, progress_headers = progress_record({"a:0": [5, False]})
    assert parse_progress(progress_headers, value) == {"a:0": [5, False]}
    assert parse_progress([("ce_id", b"x")], b"{}") is None
    assert parse_progress(progress_headers, b"not json") == {}


def test_stream_time_waits_for_every_source_then_follows_the_slowest() -> None:
    state = {"stream_time": None}
    drive_by_progress(state, ["a:0", "a:1", "b:0"])
    assert observe_time(state, 500, "a:0") is None  # inputs do not move it
    assert report_progress(state, {"a:0": [100, False], "a:1": [300, False]}) is None
    assert report_progress(state, {"b:0": [None, True]}) == 100  # b idle: min(a:0, a:1)
    state["stream_time"] = 100
    assert report_progress(state, {"a:0": [400, False]}) == 300
    state["stream_time"] = 300
    assert report_progress(state, {"a:0": [50, False]}) is None  # never goes back
    assert watermark({"x": [10, True], "y": [20, True]}) == 20  # all caught up: final
    assert watermark({"x": [None, True]}) is None


def test_without_reports_merged_sources_use_the_slowest() -> None:
    state: dict = {"stream_time": None}
    for timestamp, source, expected in ((100, "a", 100), (500, "b", 100), (300, "a", 300),
                                        (50, None, 300)):
        state["stream_time"] = observe_time(state, timestamp, source)
        assert state["stream_time"] == expected
