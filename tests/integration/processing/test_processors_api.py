"""Stream processors through the REST API on the shared worker: create, start, stop, metrics."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from esb import ids
from tests.integration.processing.helpers import (
    event_record,
    make_stream,
    publish,
    read_stream,
    record_id,
)
from tests.support import consume_all, eventually, header, unique

pytestmark = pytest.mark.integration


def filter_body(source: dict, target: dict, **extra) -> dict:
    return {
        "processor_name": unique("filter"),
        "processor_description": "verified EUR orders over 10",
        "processor_type": "FILTER",
        "source_stream_id": source["stream_id"],
        "target_stream_id": target["stream_id"],
        "processing_logic": {"filter_expression": "payload.amount > 10",
                             "additional_checks": ["payload.currency == 'EUR'"]},
        "parallelism": 2,
        "error_handling_strategy": "SKIP",
        **extra,
    }


async def metrics_of(api, processor_id: str) -> dict:
    status, body = await api.get(f"/api/v1/stream-processors/{processor_id}/metrics")
    assert status == 200, body
    return body


async def test_filter_processor_metrics_match_what_it_did(api_for, bootstrap) -> None:
    tenant = unique()
    api = api_for(tenant)
    source, target = await make_stream(api), await make_stream(api)
    status, created = await api.post("/api/v1/stream-processors", filter_body(source, target))
    assert status == 201, created
    assert created["message"] == "Stream processor created successfully"
    processor_id = created["processor_id"]
    status, listed = await api.get("/api/v1/stream-processors")
    assert [p["processor_id"] for p in listed["processors"]] == [processor_id]

    now = int(time.time() * 1000)

    def batch(n: int, offset: int) -> tuple[list, set[str]]:
        records, passing = [], set()
        for i in range(offset, offset + n):
            amount, currency = i % 20, ("EUR" if i % 3 else "USD")
            event_id = ids.event_id()
            if amount > 10 and currency == "EUR":
                passing.add(event_id)
            records.append(event_record(tenant, "order.placed",
                                        {"amount": amount, "currency": currency},
                                        time_ms=now + i, key=f"o{i % 7}", event_id=event_id,
                                        correlationid=f"corr-{i}"))
        return records, passing

    first, first_passing = batch(60, 0)
    await publish(bootstrap, source, first)
    status, started = await api.post(f"/api/v1/stream-processors/{processor_id}/start")
    assert status == 200 and started["message"] == "Stream processor started successfully"

    async def processed(n: int):
        body = await metrics_of(api, processor_id)
        return body if body["events_processed"] >= n else None

    body = await eventually(lambda: processed(60), timeout=60)
    assert body["status"] == "RUNNING"
    assert body["events_processed"] == 60
    assert body["events_passed"] == len(first_passing)
    assert body["events_filtered"] == 60 - len(first_passing)
    assert body["error_count"] == 0
    assert body["outputs_emitted"] == len(first_passing)
    assert body["last_processed_at"] is not None
    out = await read_stream(bootstrap, target, expect=len(first_passing))
    assert {record_id(r) for r in out} == first_passing
    # a FILTER forwards the event itself: same id, lineage kept, now on the target stream
    assert all(header(r, "ce_stream") == target["stream_name"] for r in out)
    assert all(header(r, "ce_correlationid", ).startswith("corr-") for r in out)

    status, stopped = await api.post(f"/api/v1/stream-processors/{processor_id}/stop")
    assert status == 200 and stopped["message"] == "Stream processor stopped successfully"
    second, second_passing = batch(30, 60)
    await publish(bootstrap, source, second)
    await asyncio.sleep(4.0)  # a running processor would handle these well within this time
    body = await metrics_of(api, processor_id)
    assert body["status"] == "STOPPED"
    assert body["events_processed"] == 60

    await api.post(f"/api/v1/stream-processors/{processor_id}/start")
    body = await eventually(lambda: processed(90), timeout=60)
    assert body["events_processed"] == 90
    assert body["events_passed"] == len(first_passing) + len(second_passing)
    out = await read_stream(bootstrap, target, expect=len(first_passing | second_passing) + 50,
                            timeout=5)
    assert {record_id(r) for r in out} == first_passing | second_passing


async def test_invalid_definitions_are_rejected_with_the_field(api_for) -> None:
    api = api_for(unique())
    source, target = await make_stream(api), await make_stream(api)
    body = filter_body(source, target)
    body["processing_logic"] = {"filter_expression": "payload.amount >"}
    status, problem = await api.post("/api/v1/stream-processors", body)
    assert status == 422, problem
    assert problem["errors"][0]["path"] == "processing_logic.filter_expression"
    status, problem = await api.post("/api/v1/stream-processors",
                                     filter_body(source, {"stream_id": "str_nope"}))
    assert status == 422 and problem["errors"][0]["path"] == "target_stream_id"
    status, problem = await api.get("/api/v1/stream-processors/proc_missing/metrics")
    assert status == 404, problem
    name_taken = filter_body(source, target)
    assert (await api.post("/api/v1/stream-processors", name_taken))[0] == 201
    assert (await api.post("/api/v1/stream-processors", name_taken))[0] == 409


async def test_map_processor_errors_go_to_dead_letters_with_metrics(api_for, bootstrap
                                                                     ) -> None:
    tenant = unique()
    api = api_for(tenant)
    source, target = await make_stream(api, partitions=1), await make_stream(api)
    status, created = await api.post("/api/v1/stream-processors", {
        "processor_name": unique("map"), "processor_type": "MAP",
        "source_stream_id": source["stream_id"], "target_stream_id": target["stream_id"],
        "processing_logic": {"map_expression": "{'total': payload.amount * 2}",
                             "output_event_type": "order.doubled"},
        "error_handling_strategy": "DEAD_LETTER"})
    assert status == 201, created
    processor_id = created["processor_id"]
    now = int(time.time() * 1000)
    good = [event_record(tenant, "order.placed", {"amount": i}, time_ms=now, key="k",
                         correlationid="c1") for i in range(5)]
    bad = [event_record(tenant, "order.placed", {"no_amount": 1}, time_ms=now, key="k")]
    await publish(bootstrap, source, good + bad)
    await api.post(f"/api/v1/stream-processors/{processor_id}/start")

    async def done():
        body = (await api.get(f"/api/v1/stream-processors/{processor_id}/metrics"))[1]
        return body if body["events_processed"] + body["error_count"] >= 6 else None

    body = await eventually(done, timeout=60)
    assert (body["events_passed"], body["error_count"], body["dead_lettered"]) == (5, 1, 1)
    out = await read_stream(bootstrap, target, expect=5)
    input_ids = [h for _, _, headers in good for k, h in headers if k == "ce_id"]
    assert sorted(header(r, "ce_causationid") for r in out) == sorted(i.decode()
                                                                       for i in input_ids)
    assert all(header(r, "ce_correlationid") == "c1" for r in out)
    assert sorted(json.loads(r.value)["total"] for r in out) == [0, 2, 4, 6, 8]
    assert all(header(r, "ce_type") == "order.doubled" for r in out)
    prefix = source["topics"]["NORMAL"].split(".")[0]
    dead = await consume_all(bootstrap, [f"{prefix}.deadletter"], expect=10_000, timeout=3)
    ours = [r for r in dead if header(r, "ce_tenantid") == tenant]
    assert len(ours) == 1
    assert header(ours[0], "esb-dlq-stage") == "processor"
    assert header(ours[0], "esb-dlq-reason") == "processing_failed"
