"""Turning a stream-lane Kafka record into an archive row and its processing-history records.

Pure: the projection agent hands in what aiokafka gave it. The tenant and stream come from the
topic name (``<prefix>.<tenant>.<stream>.<lane>``), never from a header a producer could forge.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from esb.envelope import attributes_from_kafka_headers, is_json
from esb.readside.history import ProcessingRecord, ProcessingStatus
from esb.readside.models import ArchivedEvent
from esb.readside.stages import records_from_headers
from esb.streams import stream_id_for
from esb.topics import TopicNames

log = logging.getLogger(__name__)

INGESTION_PROCESSOR = "proc_stream_log"
INGESTION_STAGE = "INGESTION"
PROJECTION_PROCESSOR = "proc_archive"
PROJECTION_STAGE = "PROJECTION"


@dataclass(frozen=True, slots=True)
class Ingested:
    event: ArchivedEvent
    history: list[ProcessingRecord]


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _time(value: str | None, fallback: datetime) -> datetime:
    if value:
        try:
            parsed = datetime.fromisoformat(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            pass
    return fallback


def _payload(data: bytes | None, content_type: str) -> Any:
    if not data or not is_json(content_type):
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def _metadata(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"raw": raw}
    return value if isinstance(value, dict) else {"value": value}


def ingest_record(topics: TopicNames, topic: str, partition: int, offset: int, timestamp_ms: int,
                  value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> Ingested | None:
    """The archive row and history for one record; None if it is not an archivable event."""
    parsed = topics.parse_stream_topic(topic)
    if parsed is None:
        return None
    tenant, stream_name, priority = parsed
    attrs, content_type = attributes_from_kafka_headers(headers)
    if not attrs.get("id") or not attrs.get("type"):
        return None
    logged_at = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    try:
        event = ArchivedEvent(
            tenant_id=tenant, event_id=attrs["id"], event_type=attrs["type"],
            time=_time(attrs.get("time"), logged_at), stream_id=stream_id_for(stream_name),
            stream_name=stream_name, event_version=attrs.get("eventversion"),
            source=attrs.get("source"), aggregate_id=attrs.get("aggregateid"),
            aggregate_type=attrs.get("aggregatetype"),
            sequence_number=_int(attrs.get("sequencenumber")),
            correlation_id=attrs.get("correlationid"), causation_id=attrs.get("causationid"),
            user_id=attrs.get("userid"), priority=attrs.get("priority") or priority.value,
            schema_version=attrs.get("schemaversion"), payload=_payload(value, content_type),
            metadata=_metadata(attrs.get("metadata")), topic=topic, partition=partition,
            offset=offset,
        )
    except ValidationError as exc:
        log.warning("not archiving %s[%d]@%d: %s", topic, partition, offset, exc)
        return None
    history = [ProcessingRecord(
        tenant_id=tenant, event_id=event.event_id, processor_id=INGESTION_PROCESSOR,
        processing_stage=INGESTION_STAGE, status=ProcessingStatus.COMPLETED,
        started_at=logged_at, completed_at=logged_at,
        output_data={"topic": topic, "partition": partition, "offset": offset},
    ), *records_from_headers(tenant, event.event_id, headers)]
    return Ingested(event, history)


def projection_record(event: ArchivedEvent, started_at: datetime, completed_at: datetime, *,
                      batch_size: int) -> ProcessingRecord:
    """The archive write (batched): timing is the batch's, shared by its events."""
    output = {"archived": True, "batch_size": batch_size}
    return ProcessingRecord(
        tenant_id=event.tenant_id, event_id=event.event_id, processor_id=PROJECTION_PROCESSOR,
        processing_stage=PROJECTION_STAGE, status=ProcessingStatus.COMPLETED,
        started_at=started_at, completed_at=completed_at, output_data=output)
