"""Reading fields and event time out of an event in the seed's JSON shape.

One resolution rule is used everywhere (group_by, aggregation_field, join keys, CEP keys), so a
user never has to guess: ``payload.x`` reads the payload; a path whose first segment is an
envelope attribute (``event_type``, ``aggregate_id``, ``metadata.session_id``, …) reads the
envelope; any other path is relative to the payload. Write ``payload.event_type`` to read a
payload field that shadows an attribute name.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from esb.errors import ValidationFailed

ENVELOPE_ATTRIBUTES = frozenset({
    "event_id", "event_type", "event_version", "source_capability", "aggregate_id",
    "aggregate_type", "sequence_number", "timestamp", "correlation_id", "causation_id",
    "tenant_id", "user_id", "priority", "schema_version", "metadata", "stream_id",
})

_MISSING = object()


def get_path(document: Any, path: str, default: Any = None) -> Any:
    """Follow a dotted path through nested mappings; ``default`` when any step is missing."""
    current = document
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        else:
            return default
    return current


def field_value(event: Mapping[str, Any], path: str, default: Any = None) -> Any:
    """Resolve ``path`` in ``event`` by the module's one rule (payload unless an attribute)."""
    head = path.split(".", 1)[0]
    if head == "payload":
        return get_path(event, path, default)
    if head in ENVELOPE_ATTRIBUTES:
        return get_path(event, path, default)
    return get_path(event.get("payload"), path, default)


def to_epoch_ms(value: Any) -> int:
    """Event time as integer milliseconds since the epoch (ints, datetimes or ISO 8601)."""
    if isinstance(value, bool):
        raise ValidationFailed("timestamp must not be a boolean",
                               errors=[{"path": "timestamp", "message": "not a timestamp"}])
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValidationFailed(
                f"timestamp {value!r} is not ISO 8601",
                errors=[{"path": "timestamp", "message": str(exc)}],
            ) from exc
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta = value - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    raise ValidationFailed(
        f"timestamp of type {type(value).__name__} is not supported",
        errors=[{"path": "timestamp", "message": "expected epoch ms or ISO 8601"}],
    )


def from_epoch_ms(ms: int) -> str:
    """Render epoch milliseconds as the seed's ISO 8601 form (``…T10:30:00.000Z``)."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def event_time_ms(event: Mapping[str, Any]) -> int:
    """The event's own time (``timestamp``); windows and patterns run on event time."""
    value = event.get("timestamp", _MISSING)
    if value is _MISSING or value is None:
        raise ValidationFailed("event has no timestamp",
                               errors=[{"path": "timestamp", "message": "required"}])
    return to_epoch_ms(value)


def expression_variables(event: Mapping[str, Any]) -> dict[str, Any]:
    """Variables a CEL expression sees: ``payload`` plus every envelope attribute present.

    Absent attributes are bound to null rather than left undefined, so ``correlation_id ==
    null`` works instead of failing with "undefined variable".
    """
    variables: dict[str, Any] = dict.fromkeys(ENVELOPE_ATTRIBUTES)
    for name, value in event.items():
        if name in ENVELOPE_ATTRIBUTES or name == "payload":
            variables[name] = value
    variables.setdefault("payload", {})
    if variables["payload"] is None:
        variables["payload"] = {}
    return variables
