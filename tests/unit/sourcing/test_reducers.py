from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.metadata import EntryPoint
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esb.errors import ConfigurationError
from esb.sourcing import ReducerRegistry, SourcedEvent, merge_patch, merge_reducer
from esb.sourcing import reducers as reducers_module

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def event(data: Mapping[str, Any], event_type: str = "x.changed", version: int = 1) -> SourcedEvent:
    return SourcedEvent("e", "a1", "Order", event_type, version, T0, data)


# RFC 7386 appendix A test cases
@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_follows_rfc_7386(target, patch, result):
    assert merge_patch(target, patch) == result


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=10,
)
objects = st.dictionaries(st.text(max_size=3), json_values, max_size=4)


@settings(max_examples=200, deadline=None)
@given(objects, objects)
def test_merge_patch_does_not_mutate_and_is_idempotent(target, patch):
    import copy
    target_before, patch_before = copy.deepcopy(target), copy.deepcopy(patch)
    once = merge_patch(target, patch)
    assert target == target_before and patch == patch_before
    assert merge_patch(once, patch) == once


def test_default_reducer_merges_event_data():
    assert merge_reducer({"a": 1, "n": {"x": 1}}, event({"n": {"y": 2}, "a": None})) == {
        "n": {"x": 1, "y": 2}}


class OrderReducer:
    """Appends items instead of replacing the list."""

    def __call__(self, state: Mapping[str, Any], ev: SourcedEvent) -> Mapping[str, Any]:
        if ev.event_type == "order.item_added":
            return {**state, "items": [*state.get("items", []), ev.data["item"]]}
        return merge_patch(state, ev.data)


def test_registry_uses_custom_reducer_for_its_type_and_default_otherwise():
    registry = ReducerRegistry()
    registry.register("Order", OrderReducer())
    state: Mapping[str, Any] = {}
    for i, ev in enumerate([event({"item": "a"}, "order.item_added"),
                            event({"item": "b"}, "order.item_added"),
                            event({"status": "open"})], start=1):
        state = registry.apply("Order", state, ev)
        assert i
    assert state == {"items": ["a", "b"], "status": "open"}
    assert registry.apply("User", {"items": ["a"]}, event({"item": "b"})) == {
        "items": ["a"], "item": "b"}
    registry.unregister("Order")
    assert registry.get("Order") is merge_reducer


def test_register_rejects_non_callable():
    with pytest.raises(ConfigurationError):
        ReducerRegistry().register("Order", 42)  # type: ignore[arg-type]


def _fake_entry_points(monkeypatch, *eps: EntryPoint) -> None:
    def fake(group: str):
        assert group == "esb.reducers"
        return list(eps)
    monkeypatch.setattr(reducers_module, "entry_points", fake)


def test_entry_points_load_classes_and_functions(monkeypatch):
    _fake_entry_points(
        monkeypatch,
        EntryPoint("Order", f"{__name__}:OrderReducer", "esb.reducers"),
        EntryPoint("Flat", "esb.sourcing.reducers:merge_reducer", "esb.reducers"),
    )
    registry = ReducerRegistry()
    assert sorted(registry.load_entry_points()) == ["Flat", "Order"]
    assert isinstance(registry.get("Order"), OrderReducer)
    assert registry.get("Flat") is merge_reducer
    explicit = OrderReducer()
    registry.register("Flat", explicit)
    assert registry.get("Flat") is explicit  # explicit registration wins


def test_broken_entry_point_names_itself(monkeypatch):
    _fake_entry_points(monkeypatch, EntryPoint("Bad", "no_such_module_xyz:thing", "esb.reducers"))
    with pytest.raises(ConfigurationError, match="Bad"):
        ReducerRegistry().load_entry_points()
