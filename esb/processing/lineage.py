"""Correlation and causation for events a processor derives from its inputs.

* ``correlation_id`` is propagated: the explicit one, else the first input's, else the first
  input's own id (that event started the chain).
* ``causation_id`` is the input's id for one-to-one processors (FILTER, MAP, CUSTOM). For
  many-to-one outputs (aggregates, windows, joins, pattern matches) it is the id of the input
  that triggered the output (the last one), and the full list goes into the payload as
  ``input_event_ids``.
* The output's ``event_id`` is derived (UUIDv5) from the processor id and what identifies the
  output (the input ids, or a window/match key). A replay after a crash therefore re-creates the
  same id and downstream dedup by event id drops the copy.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from esb.processing.aggregates import canonical_json
from esb.processing.fields import from_epoch_ms

LINEAGE_NAMESPACE = uuid.UUID("6f0d3c9e-5b1a-4e7f-9c1d-2a8b7e4f1c55")


def derive_event_id(processor_id: str, *identity: Any) -> str:
    """A deterministic event id for an output identified by ``identity``."""
    name = canonical_json([processor_id, *identity])
    return f"evt_{uuid.uuid5(LINEAGE_NAMESPACE, name).hex}"


def derive_attributes(*, processor_id: str, inputs: Sequence[Mapping[str, Any]] = (),
                      input_event_ids: Sequence[str] | None = None,
                      correlation_id: str | None = None,
                      output_key: Any = None) -> dict[str, Any]:
    """event_id, correlation_id, causation_id (and tenant_id when all inputs share one)."""
    ids = list(input_event_ids) if input_event_ids is not None else [
        str(event["event_id"]) for event in inputs
    ]
    if not ids and output_key is None:
        raise ValueError("an output event needs input event ids or an output key")
    event_id = derive_event_id(processor_id, ids if output_key is None else output_key)
    correlation = correlation_id or next(
        (event["correlation_id"] for event in inputs if event.get("correlation_id")), None
    ) or (ids[0] if ids else event_id)
    attributes: dict[str, Any] = {
        "event_id": event_id,
        "correlation_id": correlation,
        "causation_id": ids[-1] if ids else None,
    }
    tenants = {event.get("tenant_id") for event in inputs}
    if len(tenants) == 1 and None not in tenants:
        attributes["tenant_id"] = tenants.pop()
    return attributes


def derived_event(*, processor_id: str, event_type: str, payload: Any, timestamp_ms: int,
                  inputs: Sequence[Mapping[str, Any]] = (),
                  input_event_ids: Sequence[str] | None = None,
                  correlation_id: str | None = None, output_key: Any = None,
                  tenant_id: str | None = None) -> dict[str, Any]:
    """A new event in the seed's shape, with lineage attributes filled in."""
    attributes = derive_attributes(processor_id=processor_id, inputs=inputs,
                                   input_event_ids=input_event_ids,
                                   correlation_id=correlation_id, output_key=output_key)
    if tenant_id is not None:
        attributes["tenant_id"] = tenant_id
    return {
        **attributes,
        "event_type": event_type,
        "source_capability": "event_streaming_bus",
        "timestamp": from_epoch_ms(timestamp_ms),
        "payload": payload,
        "metadata": {"processor_id": processor_id},
    }


def window_output_event(processor_id: str, result: Mapping[str, Any], *, event_type: str,
                        tenant_id: str | None = None) -> dict[str, Any]:
    """The output event for a closed window; its id is fixed by (key, window start)."""
    payload = {
        "group": result.get("group"),
        "window_start": from_epoch_ms(result["window_start"]),
        "window_end": from_epoch_ms(result["window_end"]),
        "aggregation_function": result.get("aggregation_function"),
        "aggregation_field": result.get("aggregation_field"),
        "value": result["value"],
        "event_count": result["event_count"],
        "input_event_ids": list(result["input_event_ids"]),
        "input_event_ids_truncated": result["input_event_ids_truncated"],
    }
    return derived_event(
        processor_id=processor_id, event_type=event_type, payload=payload,
        timestamp_ms=result["window_end"] - 1, input_event_ids=result["input_event_ids"],
        output_key=["window", result["key"], result["window_start"]], tenant_id=tenant_id,
    )


def pattern_output_event(match: Mapping[str, Any], *, event_type: str,
                         correlation_id: str | None = None,
                         tenant_id: str | None = None) -> dict[str, Any]:
    """The output event for a CEP match (the match dict becomes the payload)."""
    return derived_event(
        processor_id=match["pattern_id"], event_type=event_type, payload=dict(match),
        timestamp_ms=match["last_timestamp"],
        input_event_ids=match["matched_event_ids"],
        correlation_id=correlation_id,
        output_key=["match", match["key"], match["matched_event_ids"], match["last_timestamp"]],
        tenant_id=tenant_id,
    )
