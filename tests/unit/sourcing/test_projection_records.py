"""Pure parts of the projection: record -> archive row + history, the stage header, the
lane-topic pattern, and the outbound event of an append."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from agents.projection import lane_pattern
from esb.readside.ingest import ingest_record
from esb.readside.stages import records_from_headers
from esb.sourcing.commands import Delivery
from esb.sourcing.outbound import envelope_for, kafka_headers
from esb.sourcing.records import SourcedEvent
from esb.stage_history import HISTORY_HEADER, append_stage, stage_entry
from esb.topics import TopicNames

TOPICS = TopicNames("esb")
T0 = datetime(2025, 1, 26, 10, 30, tzinfo=UTC)


def sourced() -> SourcedEvent:
    return SourcedEvent("evt_1", "user_123", "User", "user.updated", 6, T0,
                        {"email": "a@x"}, "acme", "corr_1", None, "u9", {"source": "svc"})


def test_appended_event_round_trips_into_an_archive_row_with_history() -> None:
    envelope = envelope_for(sourced(), Delivery("esb.acme.es-user.high", "es-user", None, "HIGH",
                                                "user_service"))
    headers = kafka_headers(envelope, 1000.0, 1012.5, 6)
    ingested = ingest_record(TOPICS, "esb.acme.es-user.high", 2, 41, 1_737_887_400_000,
                             envelope.data, headers)
    assert ingested is not None
    event = ingested.event
    assert (event.tenant_id, event.event_id, event.sequence_number) == ("acme", "evt_1", 6)
    assert (event.aggregate_id, event.aggregate_type, event.stream_id) == (
        "user_123", "User", "str_es-user")
    assert event.payload == {"email": "a@x"} and event.metadata == {"source": "svc"}
    assert (event.priority, event.source, event.correlation_id) == ("HIGH", "user_service",
                                                                    "corr_1")
    stages = {r.processing_stage: r for r in ingested.history}
    assert set(stages) == {"INGESTION", "SOURCING"}
    assert stages["SOURCING"].processing_duration_ms == 12.5
    assert stages["INGESTION"].output_data == {"topic": "esb.acme.es-user.high",
                                               "partition": 2, "offset": 41}


def test_tenant_comes_from_the_topic_not_the_header() -> None:
    headers = [("ce_id", b"e1"), ("ce_type", b"x.y"), ("ce_tenantid", b"other"),
               ("content-type", b"application/json")]
    ingested = ingest_record(TOPICS, "esb.acme.orders.normal", 0, 0, 0, b"{}", headers)
    assert ingested is not None and ingested.event.tenant_id == "acme"
    assert ingest_record(TOPICS, "esb.ingress.high", 0, 0, 0, b"{}", headers) is None
    assert ingest_record(TOPICS, "esb.acme.orders.normal", 0, 0, 0, b"{}", headers[1:]) is None


def test_stage_header_appends_and_skips_malformed_entries() -> None:
    headers = append_stage([("a", b"1")], stage_entry("proc_router", "ROUTING", 1.0, 3.0))
    headers = append_stage(headers, stage_entry("proc_v", "VALIDATION", 3.0, 4.0,
                                                status="FAILED", output={"why": "x"}))
    assert [k for k, _ in headers] == ["a", HISTORY_HEADER]
    raw = json.loads(headers[1][1])
    raw.append({"p": "broken"})
    records = records_from_headers("t", "e", [(HISTORY_HEADER, json.dumps(raw).encode())])
    assert [(r.processing_stage, r.status.value) for r in records] == [
        ("ROUTING", "COMPLETED"), ("VALIDATION", "FAILED")]
    assert records_from_headers("t", "e", [(HISTORY_HEADER, b"not json")]) == []


def test_lane_pattern_matches_only_stream_lane_topics() -> None:
    pattern = re.compile(lane_pattern("esb"))
    assert pattern.match("esb.acme.orders.critical")
    for topic in ("esb.ingress", "esb.ingress.high", "esb.sourcing.commands", "esb.deadletter",
                  "esbx.acme.orders.normal", "esb.acme.orders.normal.x", "other.a.b.low"):
        assert not pattern.match(topic), topic
