"""Keyed jobs see every event of a key in one state, whatever the producers keyed the source by:
an AGGREGATE grouped by a field the stream is not partitioned by gives one result per group and
window (not one partial result per source partition); a JOIN of streams with different partition
counts pairs across partitions; the last window closes by itself once the stream goes quiet."""

from __future__ import annotations

import json
import random
from collections import defaultdict

import pytest

from esb.processing.fields import to_epoch_ms
from tests.integration.processing.helpers import event_record, make_stream, publish, read_stream
from tests.support import unique

pytestmark = pytest.mark.integration

WINDOW_MS = 60_000
BASE = 1_700_000_040_000  # a multiple of WINDOW_MS


async def test_aggregate_by_a_field_the_stream_is_not_keyed_by(api_for, bootstrap) -> None:
    rng = random.Random(11)
    tenant = unique()
    api = api_for(tenant)
    source, target = await make_stream(api, partitions=3), await make_stream(api, partitions=1)
    status, created = await api.post("/api/v1/stream-processors", {
        "processor_name": "by-segment", "processor_type": "AGGREGATE",
        "source_stream_id": source["stream_id"], "target_stream_id": target["stream_id"],
        "processing_logic": {"aggregation_function": "sum", "aggregation_field": "amount",
                             "group_by": ["segment", "region"]},
        # no closing events: the idle timeout closes the windows
        "window_config": {"window_type": "tumbling", "window_size_ms": WINDOW_MS,
                          "idle_timeout_ms": 500}})
    assert status == 201, created
    assert (await api.post(f"/api/v1/stream-processors/{created['processor_id']}/start")
            )[0] == 200

    sums: dict[tuple[str, str, int], int] = defaultdict(int)
    records = []
    for n in range(600):
        segment, region = rng.choice(["smb", "enterprise"]), rng.choice(["eu", "us"])
        window = rng.randrange(2)
        amount = rng.randrange(1, 50)
        sums[(segment, region, window)] += amount
        records.append(event_record(tenant, "order.placed",
                                    {"segment": segment, "region": region, "amount": amount},
                                    time_ms=BASE + window * WINDOW_MS + rng.randrange(WINDOW_MS),
                                    key=f"customer-{n}"))
    await publish(bootstrap, source, records)

    outputs = await read_stream(bootstrap, target, expect=len(sums), timeout=60)
    results = {}
    for record in outputs:
        payload = json.loads(record.value)
        window = (to_epoch_ms(payload["window_start"]) - BASE) // WINDOW_MS
        key = (payload["group"]["segment"], payload["group"]["region"], window)
        assert key not in results, f"two results for {key}: partial per-partition sums"
        results[key] = payload["value"]
    assert results == dict(sums)


async def test_join_across_streams_with_different_partition_counts(api_for, bootstrap) -> None:
    tenant = unique()
    api = api_for(tenant)
    orders, payments = await make_stream(api, partitions=3), await make_stream(api, partitions=2)
    target = await make_stream(api, partitions=1)
    status, created = await api.post("/api/v1/stream-processors", {
        "processor_name": "paid-orders", "processor_type": "JOIN",
        "source_stream_id": orders["stream_id"], "target_stream_id": target["stream_id"],
        "processing_logic": {"join_stream_id": payments["stream_id"],
                             "left_key": "payload.order_id", "right_key": "payload.order",
                             "join_window_ms": 60_000}})
    assert status == 201, created
    assert (await api.post(f"/api/v1/stream-processors/{created['processor_id']}/start")
            )[0] == 200
    # keyed by unrelated ids, so matching order and payment sit on unrelated partitions
    await publish(bootstrap, orders, [
        event_record(tenant, "order.placed", {"order_id": f"o{n}"}, time_ms=BASE + n,
                     key=f"shop-{n}") for n in range(40)])
    await publish(bootstrap, payments, [
        event_record(tenant, "payment.done", {"order": f"o{n}"}, time_ms=BASE + 1000 + n,
                     key=f"card-{n * 7}") for n in range(0, 40, 2)])
    outputs = await read_stream(bootstrap, target, expect=20, timeout=60)
    keys = sorted(json.loads(record.value)["key"] for record in outputs)
    assert keys == sorted(f"o{n}" for n in range(0, 40, 2))
