"""Aggregations over windows: count, sum, avg, min, max, distinct, and event collection.

Accumulators are pure functions over JSON-able values so window state can live in a
changelogged table. Missing or null field values are ignored like SQL NULLs (``count`` with a
field counts non-null values; without a field it counts events); a non-numeric value for a
numeric aggregation is rejected before any state changes, so the caller's error strategy decides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from esb.errors import ValidationFailed
from esb.processing.fields import event_time_ms, field_value
from esb.processing.progress import StepResult
from esb.processing.windows import Accumulator, WindowedAggregator, WindowSpec

AGGREGATION_FUNCTIONS = ("count", "sum", "avg", "min", "max", "distinct")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def canonical_json(value: Any) -> str:
    """A stable text form, so equal JSON values (dict order aside) compare equal as keys."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class CountAccumulator:
    def create(self) -> int:
        return 0

    def add(self, acc: int, value: Any, *, event_id: str, seq: int) -> int:
        return acc if value is None else acc + 1

    def merge(self, first: int, second: int) -> int:
        return first + second

    def result(self, acc: int) -> int:
        return acc


class SumAccumulator:
    def create(self) -> int | float:
        return 0

    def add(self, acc: Any, value: Any, *, event_id: str, seq: int) -> Any:
        return acc if value is None else acc + value

    def merge(self, first: Any, second: Any) -> Any:
        return first + second

    def result(self, acc: Any) -> Any:
        return acc


class AvgAccumulator:
    def create(self) -> dict[str, Any]:
        return {"n": 0, "sum": 0}

    def add(self, acc: dict[str, Any], value: Any, *, event_id: str, seq: int) -> dict[str, Any]:
        if value is None:
            return acc
        return {"n": acc["n"] + 1, "sum": acc["sum"] + value}

    def merge(self, first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
        return {"n": first["n"] + second["n"], "sum": first["sum"] + second["sum"]}

    def result(self, acc: dict[str, Any]) -> float | None:
        return acc["sum"] / acc["n"] if acc["n"] else None


class ExtremeAccumulator:
    """min or max; ``None`` until a value arrives."""

    def __init__(self, pick: Any) -> None:
        self.pick = pick

    def create(self) -> None:
        return None

    def add(self, acc: Any, value: Any, *, event_id: str, seq: int) -> Any:
        return self.merge(acc, value)

    def merge(self, first: Any, second: Any) -> Any:
        if first is None:
            return second
        if second is None:
            return first
        return self.pick(first, second)

    def result(self, acc: Any) -> Any:
        return acc


class DistinctAccumulator:
    """Count of distinct values; keeps the canonical forms (a dict as an ordered set)."""

    def create(self) -> dict[str, bool]:
        return {}

    def add(self, acc: dict[str, bool], value: Any, *, event_id: str, seq: int) -> dict[str, bool]:
        if value is None:
            return acc
        return {**acc, canonical_json(value): True}

    def merge(self, first: dict[str, bool], second: dict[str, bool]) -> dict[str, bool]:
        return {**first, **second}

    def result(self, acc: dict[str, bool]) -> int:
        return len(acc)


class CollectAccumulator:
    """The WINDOW processor type: the first ``max_events`` events (arrival order) of a window."""

    def __init__(self, max_events: int) -> None:
        self.max_events = max_events

    def create(self) -> list[list[Any]]:
        return []

    def add(self, acc: list[list[Any]], value: Any, *, event_id: str,
            seq: int) -> list[list[Any]]:
        if len(acc) >= self.max_events:
            return acc
        return [*acc, [seq, event_id, value]]

    def merge(self, first: list[list[Any]], second: list[list[Any]]) -> list[list[Any]]:
        # The first max_events of a union are within the first max_events of each part.
        return sorted([*first, *second], key=lambda item: item[0])[: self.max_events]

    def result(self, acc: list[list[Any]]) -> list[dict[str, Any]]:
        return [{"event_id": event_id, "payload": payload} for _, event_id, payload in acc]


def make_accumulator(function: str) -> Accumulator:
    """The accumulator for an ``aggregation_function`` name (see AGGREGATION_FUNCTIONS)."""
    factories: dict[str, Any] = {
        "count": CountAccumulator,
        "sum": SumAccumulator,
        "avg": AvgAccumulator,
        "min": lambda: ExtremeAccumulator(min),
        "max": lambda: ExtremeAccumulator(max),
        "distinct": DistinctAccumulator,
    }
    try:
        return factories[function]()  # type: ignore[no-any-return]
    except KeyError:
        raise ValidationFailed(
            f"unknown aggregation_function {function!r}",
            errors=[{"path": "processing_logic.aggregation_function",
                     "message": f"expected one of {', '.join(AGGREGATION_FUNCTIONS)}"}],
        ) from None


def group_key(event: Mapping[str, Any], group_by: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The group's state key (canonical JSON of the values) and the values by field name."""
    values = [field_value(event, path) for path in group_by]
    return canonical_json(values), dict(zip(group_by, values, strict=True))


class WindowedAggregateProcessor:
    """AGGREGATE and WINDOW processors: event → group key + value → windowed aggregation.

    ``function=None`` means WINDOW (collect the events' ids and payloads).
    """

    def __init__(self, *, window: WindowSpec, function: str | None, field: str | None = None,
                 group_by: Sequence[str] = (), max_events: int = 100,
                 max_input_ids: int = 100) -> None:
        self.function = function
        self.field = field
        self.group_by = list(group_by)
        accumulator = (CollectAccumulator(max_events) if function is None
                       else make_accumulator(function))
        self.windows = WindowedAggregator(window, accumulator, max_input_ids=max_input_ids)

    @classmethod
    def from_definition(cls, definition: Any) -> WindowedAggregateProcessor:
        """From a validated AGGREGATE or WINDOW ``StreamProcessorDefinition``."""
        logic = definition.logic
        window = WindowSpec.from_config(definition.window_config)
        if definition.processor_type == "WINDOW":
            return cls(window=window, function=None, group_by=logic.group_by,
                       max_events=logic.max_events, max_input_ids=logic.max_events)
        return cls(window=window, function=logic.aggregation_function,
                   field=logic.aggregation_field, group_by=logic.group_by,
                   max_input_ids=logic.max_input_ids)

    def new_state(self) -> dict[str, Any]:
        return self.windows.new_state()

    def extract_value(self, event: Mapping[str, Any]) -> Any:
        """The value to fold; raises ValidationFailed on a wrong type (before state changes)."""
        if self.function is None:
            return event.get("payload")
        if self.field is None:
            return 1 if self.function == "count" else None
        value = field_value(event, self.field)
        if value is not None and self.function in ("sum", "avg", "min", "max") \
                and not _is_number(value):
            raise ValidationFailed(
                f"{self.function} needs a number at {self.field!r}, got {type(value).__name__}",
                errors=[{"path": self.field, "message": "not a number"}],
            )
        return value

    def process(self, state: dict[str, Any], event: Mapping[str, Any], *,
                partition: int | str | None = None, offset: int | None = None,
                source: str | None = None) -> StepResult:
        """Fold one event; outputs are closed windows with their ``group`` values."""
        value = self.extract_value(event)
        timestamp = event_time_ms(event)
        key, _ = group_key(event, self.group_by)
        step = self.windows.ingest(state, key, str(event["event_id"]), timestamp, value,
                                   partition=partition, offset=offset, source=source)
        return self._decorate(step)

    def advance(self, state: dict[str, Any], stream_time: int) -> StepResult:
        return self._decorate(self.windows.advance(state, stream_time))

    def _decorate(self, step: StepResult) -> StepResult:
        for output in step.outputs:
            output["group"] = dict(zip(self.group_by, json.loads(output["key"]), strict=True))
            output["aggregation_function"] = self.function or "collect"
            output["aggregation_field"] = self.field
        return step
