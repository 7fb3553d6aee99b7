"""What a running processor or pattern does with one input event: the pure core of the runtime.

A handler owns no state: the runtime passes it the operator state of the source partition the
event came from (one JSON-able dict, see :mod:`esb.processing.partition_state`). It answers with
a :class:`Handled`: whether the input passed or was filtered, the derived events to emit (seed
shape, lineage filled in, deterministic ids), whether the input itself is forwarded unchanged
(FILTER), and late inputs (to count and dead-letter). Errors propagate so the runtime's
``error_handling_strategy`` decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from esb.processing.aggregates import WindowedAggregateProcessor
from esb.processing.cep import PatternEngine, parse_pattern
from esb.processing.custom import Processor, load_processor, run_custom
from esb.processing.fields import event_time_ms
from esb.processing.join import StreamJoin
from esb.processing.lineage import (
    derive_attributes,
    derived_event,
    pattern_output_event,
    window_output_event,
)
from esb.processing.models import ProcessorType, StreamProcessorDefinition
from esb.processing.operators import _CARRIED_ATTRIBUTES, FilterOperator, MapOperator
from esb.processing.progress import StepResult

Outcome = Literal["passed", "filtered"]

AGGREGATE_EVENT_TYPE = "esb.aggregate.result"
WINDOW_EVENT_TYPE = "esb.window.result"
JOIN_EVENT_TYPE = "esb.join.result"


@dataclass
class Handled:
    outcome: Outcome
    outputs: list[dict[str, Any]] = field(default_factory=list)
    forward: bool = False
    late: bool = False


class ProcessorHandler:
    """One stream processor definition, ready to apply to events."""

    def __init__(self, processor_id: str, definition: StreamProcessorDefinition, *,
                 tenant: str) -> None:
        self.processor_id = processor_id
        self.definition = definition
        self.tenant = tenant
        self.kind = definition.processor_type
        logic = definition.logic
        self.filter: FilterOperator | None = None
        self.mapper: MapOperator | None = None
        self.windows: WindowedAggregateProcessor | None = None
        self.join: StreamJoin | None = None
        self.custom: Processor | None = None
        if self.kind == ProcessorType.FILTER:
            self.filter = FilterOperator.from_logic(logic)
        elif self.kind == ProcessorType.MAP:
            self.mapper = MapOperator.from_logic(logic, processor_id=processor_id)
        elif self.kind in (ProcessorType.AGGREGATE, ProcessorType.WINDOW):
            self.windows = WindowedAggregateProcessor.from_definition(definition)
        elif self.kind == ProcessorType.JOIN:
            self.join = StreamJoin.from_definition(definition)
        else:
            self.custom = load_processor(logic.entry_point, logic.config)

    def new_operator_state(self) -> dict[str, Any] | None:
        if self.windows is not None:
            return self.windows.new_state()
        if self.join is not None:
            return self.join.new_state()
        return None

    def handle(self, state: dict[str, Any] | None, event: dict[str, Any], *,
               side: Literal["left", "right"] = "left") -> Handled:
        if self.filter is not None:
            passed = self.filter.passes(event)
            return Handled("passed" if passed else "filtered", forward=passed)
        if self.mapper is not None:
            return Handled("passed", self.mapper.process(event))
        if self.windows is not None:
            assert state is not None
            return self._windowed(self.windows.process(state, event))
        if self.join is not None:
            assert state is not None
            step = self.join.process(state, side, event)
            outputs = [self._joined(pair, side) for pair in step.outputs]
            return Handled("filtered" if step.late else "passed", outputs, late=bool(step.late))
        assert self.custom is not None
        outputs = [self._custom_output(event, index, out)
                   for index, out in enumerate(run_custom(self.custom, event))]
        return Handled("passed" if outputs else "filtered", outputs)

    def tick(self, state: dict[str, Any] | None, now_ms: int) -> list[dict[str, Any]]:
        """Processors run on event time only: windows close when later events arrive."""
        return []

    def _windowed(self, step: StepResult) -> Handled:
        event_type = (WINDOW_EVENT_TYPE if self.kind == ProcessorType.WINDOW
                      else AGGREGATE_EVENT_TYPE)
        outputs = []
        for result in step.outputs:
            output = window_output_event(self.processor_id, result, event_type=event_type,
                                         tenant_id=self.tenant)
            output["partition_key"] = result["key"]
            outputs.append(output)
        return Handled("filtered" if step.late else "passed", outputs, late=bool(step.late))

    def _joined(self, pair: dict[str, Any], side: str) -> dict[str, Any]:
        left, right = pair["left"], pair["right"]
        trigger, stored = (left, right) if side == "left" else (right, left)
        payload = {
            "key": pair["key"],
            "left": {name: left.get(name) for name in ("event_id", "event_type", "payload")},
            "right": {name: right.get(name) for name in ("event_id", "event_type", "payload")},
        }
        output = derived_event(
            processor_id=self.processor_id, event_type=JOIN_EVENT_TYPE, payload=payload,
            timestamp_ms=max(event_time_ms(left), event_time_ms(right)),
            inputs=[stored, trigger],
            output_key=["join", left["event_id"], right["event_id"]], tenant_id=self.tenant,
        )
        output["partition_key"] = str(pair["key"])
        return output

    def _custom_output(self, event: dict[str, Any], index: int,
                       output: dict[str, Any]) -> dict[str, Any]:
        """A plugin's output with lineage filled in; an unchanged input id is re-derived."""
        derived = {name: event[name] for name in _CARRIED_ATTRIBUTES if name in event}
        derived["event_type"] = event.get("event_type")
        derived.update(output)
        lineage = derive_attributes(processor_id=self.processor_id, inputs=[event],
                                    output_key=["custom", event["event_id"], index])
        if derived.get("event_id") in (None, event.get("event_id")):
            derived["event_id"] = lineage["event_id"]
        derived["correlation_id"] = derived.get("correlation_id") or lineage["correlation_id"]
        derived["causation_id"] = event["event_id"]
        return derived


class PatternHandler:
    """One CEP pattern: events in, alert events (with the matched ids) out."""

    def __init__(self, pattern_id: str, definition: dict[str, Any], *, tenant: str,
                 pattern_name: str | None = None) -> None:
        self.pattern_id = pattern_id
        self.pattern = parse_pattern({**definition, "pattern_id": pattern_id})
        self.engine = PatternEngine(self.pattern)
        self.tenant = tenant
        self.pattern_name = pattern_name or pattern_id

    def new_operator_state(self) -> dict[str, Any]:
        return self.engine.new_state()

    def handle(self, state: dict[str, Any] | None, event: dict[str, Any], *,
               side: Literal["left", "right"] = "left") -> Handled:
        assert state is not None
        relevant = (self.engine.correlation_key(event) is not None
                    and self.engine.is_relevant(event))
        step = self.engine.process(state, event)
        outputs = [self.alert(match) for match in step.outputs]
        if step.late:
            return Handled("filtered", outputs, late=True)
        return Handled("passed" if relevant else "filtered", outputs)

    def tick(self, state: dict[str, Any] | None, now_ms: int) -> list[dict[str, Any]]:
        """Advance time (wall clock) so absence deadlines fire without further events."""
        assert state is not None
        if state["stream_time"] is None:
            return []  # nothing seen yet: no timers can be pending
        return [self.alert(match) for match in self.engine.advance_time(state, now_ms).outputs]

    def alert(self, match: dict[str, Any]) -> dict[str, Any]:
        correlation = match["key"] if self.pattern.key_field == "correlation_id" else None
        alert = pattern_output_event(match, event_type=f"esb.pattern.{self.pattern.kind}",
                                     correlation_id=correlation, tenant_id=self.tenant)
        alert["payload"]["pattern_name"] = self.pattern_name
        alert["metadata"] = {"pattern_id": self.pattern_id}
        alert["partition_key"] = match["key"]
        alert["priority"] = "HIGH"
        return alert
