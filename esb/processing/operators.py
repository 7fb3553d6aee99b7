"""Stateless operators: FILTER and MAP over CEL expressions.

Expressions see ``payload`` plus the envelope attributes (``event_type``, ``aggregate_id``,
``tenant_id``, …; absent ones are null). A missing payload field is an evaluation error in CEL
(use ``has(payload.x)`` to test for it); the error is raised as ExpressionError so the caller's
``error_handling_strategy`` decides, rather than silently treating it as "filtered".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from esb.errors import ExpressionError
from esb.expressions import Expression, compile_expression
from esb.processing.fields import expression_variables
from esb.processing.lineage import derive_attributes

# Envelope attributes a derived event keeps from its input (identity and lineage are new).
_CARRIED_ATTRIBUTES = ("event_version", "source_capability", "aggregate_id", "aggregate_type",
                       "timestamp", "tenant_id", "user_id", "priority", "metadata")


class FilterOperator:
    """Passes an event when the filter expression and every additional check hold."""

    def __init__(self, filter_expression: str, additional_checks: Sequence[str] = ()) -> None:
        self.checks: list[Expression] = [
            compile_expression(source) for source in (filter_expression, *additional_checks)
        ]

    @classmethod
    def from_logic(cls, logic: Any) -> FilterOperator:
        return cls(logic.filter_expression, logic.additional_checks)

    def passes(self, event: Mapping[str, Any]) -> bool:
        variables = expression_variables(event)
        return all(check.matches(variables) for check in self.checks)

    def process(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The event itself (unchanged, same id) when it passes, else nothing."""
        return [event] if self.passes(event) else []


class MapOperator:
    """Replaces the payload with the map expression's result; a new event with lineage."""

    def __init__(self, map_expression: str, *, processor_id: str,
                 output_event_type: str | None = None) -> None:
        self.expression = compile_expression(map_expression)
        self.processor_id = processor_id
        self.output_event_type = output_event_type

    @classmethod
    def from_logic(cls, logic: Any, *, processor_id: str) -> MapOperator:
        return cls(logic.map_expression, processor_id=processor_id,
                   output_event_type=logic.output_event_type)

    def new_payload(self, event: Mapping[str, Any]) -> dict[str, Any]:
        result = self.expression.evaluate(expression_variables(event))
        if not isinstance(result, dict):
            raise ExpressionError(
                f"map expression must produce a map (the new payload), got "
                f"{type(result).__name__}",
                expression=self.expression.source,
            )
        return result

    def process(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        payload = self.new_payload(event)
        derived: dict[str, Any] = {
            name: event[name] for name in _CARRIED_ATTRIBUTES if name in event
        }
        derived.update(derive_attributes(processor_id=self.processor_id, inputs=[event]))
        derived["event_type"] = self.output_event_type or event.get("event_type")
        derived["payload"] = payload
        return [derived]
