"""A tumbling-window AGGREGATE whose worker is killed (-9) mid-stream and restarted on a fresh
replica (empty local RocksDB: state comes back from the changelog) gives exactly the results of
an uninterrupted run: one value per window, equal to a brute-force sum, and metrics that count
every input once. Events are keyed by order, not by the group (region), so every group spans
both source partitions: the re-key stage and its dedup are part of what is killed."""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections import defaultdict

import pytest

from esb.processing.fields import to_epoch_ms
from tests.integration.processing.helpers import event_record, make_stream, publish, read_stream
from tests.support import Api, eventually, unique

pytestmark = pytest.mark.integration

WINDOW_MS = 10_000
BASE = 1_700_000_000_000  # a multiple of WINDOW_MS
REGIONS = ("eu", "us", "apac")


def make_events(tenant: str, windows: range, per_window: int, rng: random.Random
                ) -> tuple[list, dict[tuple[str, int], int]]:
    """Events in time order per region (shuffled within each window: out of order, not late)."""
    records, sums = [], defaultdict(int)
    for window in windows:
        for region in REGIONS:
            times = [BASE + window * WINDOW_MS + rng.randrange(WINDOW_MS)
                     for _ in range(per_window)]
            for t in times:
                amount = rng.randrange(1, 100)
                sums[(region, window)] += amount
                records.append(event_record(tenant, "order.placed",
                                            {"region": region, "amount": amount}, time_ms=t,
                                            key=f"order-{rng.randrange(10_000)}"))
    return records, sums


async def test_kill_9_mid_window_keeps_window_results_exact(worker_group, http, bootstrap
                                                             ) -> None:
    rng = random.Random(7)
    tenant = unique()
    first = worker_group.start()
    api = Api(http, worker_group.url(first), worker_group.token(tenant))
    source, target = await make_stream(api, partitions=2), await make_stream(api, partitions=1)
    status, created = await api.post("/api/v1/stream-processors", {
        "processor_name": "sales", "processor_type": "AGGREGATE",
        "source_stream_id": source["stream_id"], "target_stream_id": target["stream_id"],
        "processing_logic": {"aggregation_function": "sum", "aggregation_field": "amount",
                             "group_by": ["region"], "max_input_ids": 5},
        "window_config": {"window_type": "tumbling", "window_size_ms": WINDOW_MS,
                          "idle_timeout_ms": 0},  # event time only: the phases pause
        "error_handling_strategy": "SKIP"})
    assert status == 201, created
    processor_id = created["processor_id"]

    # phase 1: windows 0-2 and the first half of window 3 (left open in the state)
    phase1, expected = make_events(tenant, range(0, 3), 150, rng)
    half, half_sums = make_events(tenant, range(3, 4), 100, rng)
    await publish(bootstrap, source, phase1 + half)
    assert (await api.post(f"/api/v1/stream-processors/{processor_id}/start"))[0] == 200

    async def processed(api: Api, n: int):
        status, body = await api.get(f"/api/v1/stream-processors/{processor_id}/metrics")
        return body if status == 200 and body["events_processed"] >= n else None

    await eventually(lambda: processed(api, len(phase1) + len(half)), timeout=90)
    # windows 0-2 close once every source partition (idle lanes included) has reported
    closed = await read_stream(bootstrap, target, expect=3 * len(REGIONS), timeout=30)
    assert len(closed) == 3 * len(REGIONS)

    # phase 2: the rest of window 3, windows 4-7, late events, then the kill while it runs
    rest, rest_sums = make_events(tenant, range(3, 8), 400, rng)
    late = [event_record(tenant, "order.placed", {"region": region, "amount": 1000},
                         time_ms=BASE + 1, key=f"late-{region}") for region in REGIONS]
    # one closer per source partition moves every source's event time past window 7
    closers = [event_record(tenant, "order.placed", {"region": region, "amount": 0},
                            time_ms=BASE + 9 * WINDOW_MS, key=f"closer-{n}")
               for n in range(12) for region in REGIONS[:1]]
    await publish(bootstrap, source, rest[:1500] + late + rest[1500:] + closers)
    await asyncio.sleep(0.3)
    worker_group.kill(first)

    second = worker_group.start()  # a new replica: its local RocksDB store is empty
    api = Api(http, worker_group.url(second), worker_group.token(tenant))
    for sums in (half_sums, rest_sums):
        for key, value in sums.items():
            expected[key] += value
    total = len(phase1) + len(half) + len(rest) + len(late) + len(closers)
    metrics = await eventually(lambda: processed(api, total), timeout=120)
    restored = re.findall(r"restored state of partitions .* \((\d+) from the changelog\)",
                          worker_group.log(second))
    assert restored and sum(map(int, restored)) >= 1, "the new replica restored from the log"

    outputs = await read_stream(bootstrap, target, expect=10_000, timeout=10)
    values: dict[tuple[str, int], set[int]] = defaultdict(set)
    counts: dict[tuple[str, int], set[int]] = defaultdict(set)
    for record in outputs:
        payload = json.loads(record.value)
        window = (to_epoch_ms(payload["window_start"]) - BASE) // WINDOW_MS
        key = (payload["group"]["region"], window)
        values[key].add(payload["value"])
        counts[key].add(payload["event_count"])
    assert set(values) == set(expected), (
        f"every closed window is emitted, no other: missing {set(expected) - set(values)}, "
        f"extra {set(values) - set(expected)}")
    wrong = {k: (v, expected[k]) for k, v in values.items() if v != {expected[k]}}
    assert not wrong, f"windows with double-counted or missing inputs: {wrong}"
    assert all(len(c) == 1 for c in counts.values())
    assert metrics["events_processed"] == total  # metrics are exact too
    assert metrics["late_events"] == len(late)
