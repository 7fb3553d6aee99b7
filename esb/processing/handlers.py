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

from esb.processing.aggregates import WindowedAggregateProcessor, canonical_json, group_key
from esb.processing.cep import PatternEngine, parse_pattern
from esb.processing.custom import Processor, load_processor, run_custom
from esb.processing.fields import event_time_ms, field_value
from esb.processing.join import StreamJoin
from esb.processing.lineage import (
    derive_attributes,
    derived_event,
    pattern_output_event,
    window_output_event,
)
from esb.processing.models import ProcessorType, StreamProcessorDefinition
from esb.processing.operators import _CARRIED_ATTRIBUTES, FilterOperator, MapOperator
from esb.processing.progress import StepResult, drop_sources, report_progress

Outcome = Literal["passed", "filtered"]

AGGREGATE_EVENT_TYPE = "esb.aggregate.result"
WINDOW_EVENT_TYPE = "esb.window.result"
JOIN_EVENT_TYPE = "esb.join.result"
DEFAULT_IDLE_TIMEOUT_MS = 2000


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
        window = definition.window_config
        self.idle_timeout_ms = (window.idle_timeout_ms if window is not None
                                else DEFAULT_IDLE_TIMEOUT_MS)
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
               side: Literal["left", "right"] = "left", source: str | None = None) -> Handled:
        """Apply one event; ``source`` names its ordered input (topic partition) for the
        stream time of stateful processors (see :mod:`esb.processing.progress`)."""
        if self.filter is not None:
            passed = self.filter.passes(event)
            return Handled("passed" if passed else "filtered", forward=passed)
        if self.mapper is not None:
            return Handled("passed", self.mapper.process(event))
        if self.windows is not None:
            assert state is not None
            return self._windowed(self.windows.process(state, event, source=source))
        if self.join is not None:
            assert state is not None
            step = self.join.process(state, side, event, source=source)
            outputs = [self._joined(pair, side) for pair in step.outputs]
            return Handled("filtered" if step.late else "passed", outputs, late=bool(step.late))
        assert self.custom is not None
        outputs = [self._custom_output(event, index, out)
                   for index, out in enumerate(run_custom(self.custom, event))]
        return Handled("passed" if outputs else "filtered", outputs)

    @property
    def keyed(self) -> bool:
        """Whether the processor's state is per key (then it reads a re-keyed stream)."""
        return self.windows is not None or self.join is not None

    def routing_key(self, event: dict[str, Any], side: Literal["left", "right"] = "left"
                    ) -> str | None:
        """The key whose events must meet in one state: group or join key (None: any)."""
        if self.windows is not None:
            return group_key(event, self.windows.group_by)[0]
        if self.join is not None:
            value = field_value(event, self.join.key_paths[side])
            return None if value is None else canonical_json(value)
        return None

    def tick(self, state: dict[str, Any] | None, now_ms: int,
             idle_sources: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
        """Wall-clock time passing: stop waiting for idle sources, close idle windows.

        Stream time is the slowest source's (see :mod:`esb.processing.progress`); sources the
        runtime saw nothing from for ``idle_timeout_ms`` stop holding it back. A partition
        whose stream time has then not moved for ``idle_timeout_ms`` advances it by the
        wall-clock time elapsed since it last moved, so the last windows close without later
        events (Flink's idleness). Busy partitions stay on pure event time, which keeps their
        results independent of processing speed.
        """
        operator = self.windows or self.join
        if operator is None or state is None or state["stream_time"] is None:
            return []
        outputs: list[dict[str, Any]] = []
        released = drop_sources(state, set(idle_sources))
        if released is not None:
            outputs += self._advanced(operator.advance(state, released))
        if self.windows is None or not self.idle_timeout_ms:
            return outputs
        stream_time = state["stream_time"]
        mark = state.get("idle_mark")  # [wall ms, stream time then, stream time we set]
        if mark is None or mark[2] != stream_time:
            state["idle_mark"] = [now_ms, stream_time, stream_time]
            return outputs
        elapsed = now_ms - mark[0]
        if elapsed >= self.idle_timeout_ms:
            outputs += self._advanced(self.windows.advance(state, mark[1] + elapsed))
            mark[2] = state["stream_time"]
        return outputs

    def progress(self, state: dict[str, Any] | None, reports: dict[str, Any]
                 ) -> list[dict[str, Any]]:
        """Sources' progress from the re-key stage; the windows it closed."""
        operator = self.windows or self.join
        if operator is None or state is None:
            return []
        moved = report_progress(state, reports)
        return [] if moved is None else self._advanced(operator.advance(state, moved))

    def _advanced(self, step: StepResult) -> list[dict[str, Any]]:
        return self._windowed(step).outputs if self.windows is not None else []

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
                 pattern_name: str | None = None, timer_lag_ms: int | None = None,
                 idle_timeout_ms: int = DEFAULT_IDLE_TIMEOUT_MS) -> None:
        self.pattern_id = pattern_id
        self.timer_lag_ms = timer_lag_ms  # None: timers fire on event time only
        self.idle_timeout_ms = idle_timeout_ms
        self.pattern = parse_pattern({**definition, "pattern_id": pattern_id})
        self.engine = PatternEngine(self.pattern)
        self.tenant = tenant
        self.pattern_name = pattern_name or pattern_id

    def new_operator_state(self) -> dict[str, Any]:
        return self.engine.new_state()

    keyed = True

    def routing_key(self, event: dict[str, Any], side: Literal["left", "right"] = "left"
                    ) -> str | None:
        """The correlation key: one key's events must meet in one state."""
        return self.engine.correlation_key(event)

    def handle(self, state: dict[str, Any] | None, event: dict[str, Any], *,
               side: Literal["left", "right"] = "left", source: str | None = None) -> Handled:
        assert state is not None
        relevant = (self.engine.correlation_key(event) is not None
                    and self.engine.is_relevant(event))
        step = self.engine.process(state, event, source=source)
        outputs = [self.alert(match) for match in step.outputs]
        if step.late:
            return Handled("filtered", outputs, late=True)
        return Handled("passed" if relevant else "filtered", outputs)

    def progress(self, state: dict[str, Any] | None, reports: dict[str, Any]
                 ) -> list[dict[str, Any]]:
        """Sources' progress from the re-key stage; the matches and timers it released."""
        assert state is not None
        moved = report_progress(state, reports)
        if moved is None:
            return []
        return [self.alert(match) for match in self.engine.advance_time(state, moved).outputs]

    def tick(self, state: dict[str, Any] | None, now_ms: int,
             idle_sources: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
        """Stop waiting for idle sources; with wall-clock timers, advance stream time to
        ``now - timer_lag_ms`` so absence deadlines fire without further events."""
        assert state is not None
        if state["stream_time"] is None:
            return []  # nothing seen yet: no timers can be pending
        target = drop_sources(state, set(idle_sources))
        if self.timer_lag_ms is not None:
            target = max(target or 0, now_ms - self.timer_lag_ms)
        if target is None:
            return []
        return [self.alert(match) for match in self.engine.advance_time(state, target).outputs]

    def alert(self, match: dict[str, Any]) -> dict[str, Any]:
        correlation = match["key"] if self.pattern.key_field == "correlation_id" else None
        alert = pattern_output_event(match, event_type=f"esb.pattern.{self.pattern.kind}",
                                     correlation_id=correlation, tenant_id=self.tenant)
        alert["payload"]["pattern_name"] = self.pattern_name
        alert["metadata"] = {"pattern_id": self.pattern_id}
        alert["partition_key"] = match["key"]
        alert["priority"] = "HIGH"
        return alert
