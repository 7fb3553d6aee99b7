"""The CloudEvent an accepted append publishes to its stream (Kafka binary binding).

The aggregate's id is the record key, so a stream keeps each aggregate's events in order;
``sequencenumber`` is the event's version. The owner's decision time is recorded as the
``SOURCING`` stage in the ``esb-history`` header.
"""

from __future__ import annotations

import json

from esb.envelope import JSON, SPECVERSION, Envelope, format_time
from esb.sourcing.commands import Delivery
from esb.sourcing.records import SourcedEvent
from esb.stage_history import append_stage, stage_entry

SOURCING_PROCESSOR = "proc_event_sourcing"
SOURCING_STAGE = "SOURCING"


def envelope_for(event: SourcedEvent, delivery: Delivery) -> Envelope:
    attrs = {
        "specversion": SPECVERSION, "id": event.event_id, "source": delivery.source,
        "type": event.event_type, "time": format_time(event.timestamp),
        "aggregateid": event.aggregate_id, "aggregatetype": event.aggregate_type,
        "sequencenumber": str(event.version), "priority": delivery.priority,
        "stream": delivery.stream_name,
    }
    optional = {"tenantid": event.tenant_id, "correlationid": event.correlation_id,
                "causationid": event.causation_id, "userid": event.user_id}
    attrs.update({k: v for k, v in optional.items() if v})
    if event.metadata:
        attrs["metadata"] = json.dumps(dict(event.metadata), separators=(",", ":"))
    data = json.dumps(dict(event.data), separators=(",", ":"), ensure_ascii=False).encode()
    return Envelope(attrs, data, JSON)


def kafka_headers(envelope: Envelope, started_ms: float, completed_ms: float,
                  version: int) -> list[tuple[str, bytes]]:
    return append_stage(envelope.kafka_headers(), stage_entry(
        SOURCING_PROCESSOR, SOURCING_STAGE, started_ms, completed_ms,
        output={"version": version}))
