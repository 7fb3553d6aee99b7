"""The quiet-partition fetch wait on the real broker (ADR 0021).

- a kit consumer left alone stretches its wait to the idle maximum and sends a few Fetch
  requests a second instead of fifty, and the first record after the quiet spell still arrives
  within about one wait, snapping the wait back to the minimum;
- a worker whose loops have all gone quiet still routes a Kafka-native ingress record, archives
  an HTTP-published event and delivers it to a webhook.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from esb.consumer_kit import build_consumer
from esb.metrics import REGISTRY
from esb.settings import Settings
from tests.integration.delivery_e2e.conftest import Receiver, delivery_env, subscribe
from tests.support import (
    Api,
    WorkerGroup,
    ce_headers,
    consume_all,
    eventually,
    produce,
    unique,
)

pytestmark = pytest.mark.integration

MIN_MS, IDLE_MAX_MS = 20, 400


def _empty_fetches() -> float:
    return REGISTRY.get_sample_value("esb_consumer_fetches_total", {"result": "empty"}) or 0.0


async def test_a_quiet_consumer_polls_rarely_and_wakes_on_the_first_record(
        broker_url: str, bootstrap: str, tmp_path: Path) -> None:
    topic = unique("idle")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    settings = Settings(broker=broker_url, mode="development", data_dir=tmp_path,
                        fetch_max_wait_ms=MIN_MS, fetch_idle_max_wait_ms=IDLE_MAX_MS)
    consumer = build_consumer(settings, None, client_id="idle-test")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        await consumer.getmany(timeout_ms=100)
        await asyncio.sleep(5.0)  # quiet: a tenth of 5 s is beyond the idle maximum
        assert consumer._fetcher._fetch_max_wait_ms == IDLE_MAX_MS
        before, started = _empty_fetches(), time.monotonic()
        await asyncio.sleep(2.0)
        rate = (_empty_fetches() - before) / (time.monotonic() - started)
        assert rate < 4.0, rate  # 1000 / 400 = 2.5 a second; a fixed 20 ms wait sends ~50

        await produce(bootstrap, topic, [(b"k", b"first after idle", [])])
        sent = time.monotonic()
        got: list[bytes] = []
        while not got and time.monotonic() - sent < 5.0:
            batches = await consumer.getmany(timeout_ms=100)
            got = [r.value for records in batches.values() for r in records]
        assert got == [b"first after idle"]
        assert time.monotonic() - sent < 1.5  # within about one idle wait
        await asyncio.sleep(0.1)  # the fetch after the one with the record
        assert consumer._fetcher._fetch_max_wait_ms == MIN_MS
    finally:
        await consumer.stop()


async def _worker_fetches(api: Api) -> dict[str, float]:
    status, text = await api.get("/metrics")
    assert status == 200
    out = {"empty": 0.0, "consumers": 0.0}
    for line in text.splitlines():
        if line.startswith('esb_consumer_fetches_total{result="empty"}'):
            out["empty"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("esb_consumer_fetch_wait_consumers "):
            out["consumers"] = float(line.rsplit(" ", 1)[1])
    return out


async def test_a_quiet_worker_still_routes_archives_and_delivers(
        broker_url: str, database_url: str, redis_url: str, bootstrap: str, http) -> None:
    group = WorkerGroup(broker_url, database_url, Path(tempfile.mkdtemp(prefix="esb-idle-")))
    port = group.start(**delivery_env(redis_url), ESB_FETCH_IDLE_MAX_WAIT_MS="1000")
    receiver = await Receiver().start()
    try:
        tenant = unique()
        api = Api(http, group.url(port), group.token(tenant))
        stream = unique("s")
        status, body = await api.post("/api/v1/streams", {"stream_name": stream,
                                                          "source_capability": "orders"})
        assert status == 201, body
        topics = body["stream"]["topics"]
        await subscribe(api, stream, receiver.url("idle"))
        await asyncio.sleep(12.0)  # every loop quiet for longer than the wait needs to peak
        first, started = await _worker_fetches(api), time.monotonic()
        await asyncio.sleep(3.0)
        last = await _worker_fetches(api)
        rate = (last["empty"] - first["empty"]) / (time.monotonic() - started)
        # Faust's consumer and every kit loop adapt; at a fixed 20 ms they sent ~50/s each
        assert last["consumers"] >= 8 and rate < 3 * last["consumers"], (last, rate)

        status, published = await api.post("/api/v1/events", {
            "stream_name": stream, "event_type": "order.created", "source_capability": "orders",
            "aggregate_id": "o-1", "payload": {"n": 1}})
        assert status == 201, published
        event_id = published["event_id"]
        await produce(bootstrap, f"{group.settings.topic_prefix}.{tenant}.ingress",
                      [(b"o-2", json.dumps({"n": 2}).encode(),
                        ce_headers(tenant, "order.created", source="orders"))])

        async def delivered() -> bool:
            return len(receiver.on("idle")) >= 2

        await eventually(delivered, timeout=30)  # both: HTTP-published and Kafka-native

        async def archived() -> bool:
            status, _ = await api.get(f"/api/v1/events/{event_id}")
            return status == 200

        await eventually(archived, timeout=30)
        routed = await consume_all(bootstrap, topics.values(), expect=2)
        assert sorted(json.loads(r.value)["n"] for r in routed) == [1, 2]
    finally:
        await receiver.stop()
        group.stop_all()
