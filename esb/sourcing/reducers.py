"""Folding an event's data into aggregate state: the default merge and pluggable reducers.

Default semantics (:func:`merge_patch`) are exactly RFC 7386 JSON Merge Patch with the
event's ``data`` as the patch and the current state as the target:

* a key whose value in ``data`` is ``null`` is removed from the state (absent keys stay absent);
* a key whose value is an object is merged recursively into the state's value at that key
  (a non-object state value there is first replaced by ``{}``);
* any other value (string, number, bool, array) replaces the state's value; arrays are
  replaced whole, never merged element by element;
* keys not mentioned in ``data`` are kept.

Event type and other envelope fields do not matter to the default reducer. An aggregate type
that needs more (e.g. ``order.item_added`` appending to a list) registers its own reducer,
either explicitly (:meth:`ReducerRegistry.register`) or through the ``esb.reducers`` entry
point group, whose entry point name is the aggregate type::

    [project.entry-points."esb.reducers"]
    Order = "shop.reducers:OrderReducer"

An entry point may name a reducer object/function or a class (instantiated without arguments).
Reducers must be pure: return a new mapping, never mutate the state they were given.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from esb.errors import ConfigurationError
from esb.sourcing.records import SourcedEvent

ENTRY_POINT_GROUP = "esb.reducers"

log = logging.getLogger(__name__)


@runtime_checkable
class Reducer(Protocol):
    """Folds one event into an aggregate's state, returning the new state."""

    def __call__(self, state: Mapping[str, Any], event: SourcedEvent) -> Mapping[str, Any]: ...


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON Merge Patch; returns a new value and leaves both inputs untouched."""
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def merge_reducer(state: Mapping[str, Any], event: SourcedEvent) -> Mapping[str, Any]:
    """The default reducer: merge-patch the event's data into the state."""
    return merge_patch(state, event.data)


class ReducerRegistry:
    """Reducers by aggregate type; explicit registration wins over entry points."""

    def __init__(self, default: Reducer = merge_reducer) -> None:
        self._default = default
        self._explicit: dict[str, Reducer] = {}
        self._from_entry_points: dict[str, Reducer] = {}

    def register(self, aggregate_type: str, reducer: Reducer) -> None:
        if not callable(reducer):
            raise ConfigurationError(f"reducer for {aggregate_type!r} is not callable")
        self._explicit[aggregate_type] = reducer

    def unregister(self, aggregate_type: str) -> None:
        self._explicit.pop(aggregate_type, None)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Load every reducer advertised in ``group``; returns the aggregate types loaded."""
        loaded: list[str] = []
        for entry_point in entry_points(group=group):
            try:
                obj = entry_point.load()
                reducer = obj() if isinstance(obj, type) else obj
            except Exception as exc:
                raise ConfigurationError(
                    f"cannot load reducer entry point {entry_point.name!r} "
                    f"({entry_point.value}): {exc}"
                ) from exc
            if not callable(reducer):
                raise ConfigurationError(
                    f"reducer entry point {entry_point.name!r} ({entry_point.value}) "
                    "is not callable"
                )
            self._from_entry_points[entry_point.name] = reducer
            loaded.append(entry_point.name)
            log.info("loaded reducer for aggregate type %s from %s", entry_point.name,
                     entry_point.value)
        return loaded

    def get(self, aggregate_type: str) -> Reducer:
        return (self._explicit.get(aggregate_type)
                or self._from_entry_points.get(aggregate_type)
                or self._default)

    def apply(self, aggregate_type: str, state: Mapping[str, Any],
              event: SourcedEvent) -> dict[str, Any]:
        return dict(self.get(aggregate_type)(state, event))


def default_registry() -> ReducerRegistry:
    """A registry with the ``esb.reducers`` entry points loaded (built once per call)."""
    registry = ReducerRegistry()
    registry.load_entry_points()
    return registry


@lru_cache(maxsize=1)
def shared_registry() -> ReducerRegistry:
    """The process-wide registry used when a caller passes none (loaded once)."""
    return default_registry()
