"""FILTER, MAP, JOIN and CUSTOM operators."""

from __future__ import annotations

import json
import sys
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esb.errors import ExpressionError, NotFound, ValidationFailed
from esb.processing.custom import available_processors, load_processor, run_custom
from esb.processing.join import StreamJoin
from esb.processing.lineage import derive_event_id
from esb.processing.models import parse_processor_definition
from esb.processing.operators import FilterOperator, MapOperator

USER = {
    "event_id": "evt_1", "event_type": "user.updated", "aggregate_id": "usr_1",
    "tenant_id": "t1", "correlation_id": "cor_9", "timestamp": "2025-01-26T10:30:00.000Z",
    "payload": {"verification_status": "verified", "email_verified": True,
                "phone_verified": False, "name": "Ada", "address": {"city": "Oslo"}},
}


def test_filter_needs_every_check() -> None:
    definition = parse_processor_definition({
        "processor_name": "f", "processor_type": "FILTER", "source_stream_id": "a",
        "target_stream_id": "b", "processing_logic": {
            "filter_expression": "payload.verification_status == 'verified'",
            "additional_checks": ["payload.email_verified == true",
                                  "payload.phone_verified == true"]}})
    operator = FilterOperator.from_logic(definition.logic)
    assert operator.process(USER) == []
    verified = {**USER, "payload": {**USER["payload"], "phone_verified": True}}
    assert operator.process(verified) == [verified]


def test_filter_sees_attributes_and_rejects_non_boolean() -> None:
    assert FilterOperator("event_type == 'user.updated' && tenant_id == 't1'").passes(USER)
    assert FilterOperator("causation_id == null").passes(USER)
    with pytest.raises(ExpressionError, match="boolean"):
        FilterOperator("payload.name").passes(USER)
    with pytest.raises(ExpressionError):
        FilterOperator("payload.missing == 1").passes(USER)
    assert not FilterOperator("has(payload.missing)").passes(USER)


def test_map_builds_new_payload_with_lineage() -> None:
    operator = MapOperator('{"who": payload.name, "city": payload.address.city, '
                           '"kind": event_type}', processor_id="proc_1",
                           output_event_type="user.located")
    [out] = operator.process(USER)
    assert out["payload"] == {"who": "Ada", "city": "Oslo", "kind": "user.updated"}
    assert out["event_type"] == "user.located"
    assert out["causation_id"] == "evt_1" and out["correlation_id"] == "cor_9"
    assert out["aggregate_id"] == "usr_1" and out["tenant_id"] == "t1"
    assert out["timestamp"] == USER["timestamp"]
    assert out["event_id"] == derive_event_id("proc_1", ["evt_1"]) != "evt_1"
    assert operator.process(USER)[0]["event_id"] == out["event_id"]  # replay-stable
    with pytest.raises(ExpressionError, match="must produce a map"):
        MapOperator("payload.name", processor_id="p").process(USER)


# -- join ------------------------------------------------------------------------------------

def side_event(event_id: str, ts: int, key: Any) -> dict[str, Any]:
    return {"event_id": event_id, "timestamp": ts, "payload": {"k": key}}


def test_join_emits_each_pair_once_and_expires_state() -> None:
    join = StreamJoin(window_ms=10, left_key="k", grace_ms=0)
    state = join.new_state()
    assert join.process(state, "left", side_event("l1", 100, "x")).outputs == []
    [pair] = join.process(state, "right", side_event("r1", 105, "x")).outputs
    assert (pair["left"]["event_id"], pair["right"]["event_id"], pair["key"]) == \
        ("l1", "r1", "x")
    assert join.process(state, "right", side_event("r2", 105, "y")).outputs == []
    assert join.process(state, "left", side_event("l2", 111, "x")).outputs[0]["right"][
        "event_id"] == "r1"
    join.process(state, "left", side_event("l3", 200, "z"))
    assert set(state["left"]) == {'"z"'} and state["right"] == {}
    late = join.process(state, "right", side_event("r3", 150, "x"))
    assert late.outputs == [] and late.late[0]["event_id"] == "r3"
    first = join.process(state, "right", side_event("r4", 201, "z"), partition=2, offset=5)
    again = join.process(state, "right", side_event("r4", 201, "z"), partition=2, offset=5)
    assert len(first.outputs) == 1 and again.duplicate and again.outputs == []
    assert not join.process(state, "left", side_event("l4", 201, "q"), partition=2,
                            offset=5).duplicate  # offsets are per side


@settings(max_examples=200, deadline=None)
@given(window=st.integers(0, 15), grace=st.integers(0, 15),
       arrivals=st.lists(st.tuples(st.sampled_from(["left", "right"]), st.integers(-10, 8),
                                   st.sampled_from(["a", "b", None, 1])),
                         min_size=1, max_size=30))
def test_join_matches_brute_force(window: int, grace: int,
                                  arrivals: list[tuple[str, int, Any]]) -> None:
    join = StreamJoin(window_ms=window, left_key="k", grace_ms=grace)
    state = join.new_state()
    ts, now, events, emitted = 100, None, [], []
    for i, (side, delta, key) in enumerate(arrivals):
        ts = max(0, ts + delta)
        step = join.process(state, side, side_event(f"e{i}", ts, key),  # type: ignore[arg-type]
                            partition=0, offset=i)
        emitted += [(p["left"]["event_id"], p["right"]["event_id"]) for p in step.outputs]
        if now is None or ts >= now - grace:  # reference lateness
            now = ts if now is None else max(now, ts)
            events.append((side, ts, key, f"e{i}"))
        json.loads(json.dumps(state))
    expected = [
        (left[3], right[3]) for left, right in product(events, events)
        if left[0] == "left" and right[0] == "right" and left[2] is not None
        and left[2] == right[2] and type(left[2]) is type(right[2])
        and abs(left[1] - right[1]) <= window
    ]
    assert sorted(emitted) == sorted(expected)
    assert len(emitted) == len(set(emitted))


# -- custom ----------------------------------------------------------------------------------

PLUGIN = '''
class Upper:
    def __init__(self, field="name"):
        self.field = field
    def process(self, event):
        payload = dict(event["payload"])
        payload[self.field] = payload[self.field].upper()
        return [{**event, "payload": payload}]

class NotAProcessor:
    pass

def broken():
    return "nope"
'''


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real distribution on sys.path declaring entry points, found via importlib.metadata."""
    (tmp_path / "esb_test_plugin.py").write_text(PLUGIN)
    info = tmp_path / "esb_test_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: esb-test-plugin\n"
                                   "Version: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[esb.processors]\nupper = esb_test_plugin:Upper\n"
        "not_a_processor = esb_test_plugin:NotAProcessor\n"
        "broken = esb_test_plugin:broken\nmissing = esb_test_plugin_gone:X\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("esb_test_plugin", None)


@pytest.mark.usefixtures("installed_plugin")
def test_custom_processor_loads_by_entry_point() -> None:
    assert {"upper", "broken"} <= set(available_processors())
    processor = load_processor("upper", {"field": "name"})
    assert run_custom(processor, USER)[0]["payload"]["name"] == "ADA"
    definition = parse_processor_definition({
        "processor_name": "c", "processor_type": "CUSTOM", "source_stream_id": "a",
        "target_stream_id": "b", "processing_logic": {"entry_point": "upper"}})
    assert definition.logic.entry_point == "upper"


@pytest.mark.usefixtures("installed_plugin")
def test_custom_processor_errors_are_clear() -> None:
    with pytest.raises(NotFound, match=r"installed: .*upper"):
        load_processor("nope")
    with pytest.raises(ValidationFailed, match="has no process"):
        load_processor("not_a_processor")
    with pytest.raises(ValidationFailed, match="rejected its config"):
        load_processor("upper", {"colour": "red"})
    with pytest.raises(ValidationFailed, match="failed to import"):
        load_processor("missing")

    class Bad:
        def process(self, event: dict[str, Any]) -> Any:
            return event

    with pytest.raises(ValidationFailed, match="list of dicts"):
        run_custom(Bad(), USER)
