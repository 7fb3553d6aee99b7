"""Crash and priority behaviour with real worker processes.

- kill -9 of a worker under load loses no acknowledged event (HTTP 201s and ingress records);
- a CRITICAL event on the ingress is routed while a NORMAL backlog is still being worked off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from esb import ids
from tests.support import (
    Api,
    ce_headers,
    committed_total,
    consume_all,
    header,
    produce,
    unique,
    wait_router_assigned,
)

pytestmark = pytest.mark.integration


async def test_kill_9_under_load_loses_no_acknowledged_event(worker_group, http, bootstrap
                                                              ) -> None:
    a = worker_group.start()
    b = worker_group.start()
    tenant = unique()
    api_a = Api(http, worker_group.url(a), worker_group.token(tenant))
    api_b = Api(http, worker_group.url(b), worker_group.token(tenant))
    status, body = await api_a.post("/api/v1/streams", {"stream_name": "orders",
                                                        "source_capability": "shop"})
    assert status == 201, body
    topics = list(body["stream"]["topics"].values())
    acked: set[str] = set()
    stop = asyncio.Event()

    async def publisher(api: Api) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            with contextlib.suppress(Exception):  # the killed worker's requests may fail: fine
                status, answer = await api.post("/api/v1/events", {
                    "event_type": "order.placed", "source_capability": "shop",
                    "aggregate_id": f"o{i % 50}", "payload": {"i": i}})
                if status == 201:
                    acked.add(answer["event_id"])

    ingress_ids = [ids.event_id() for _ in range(3000)]
    tasks = [asyncio.ensure_future(publisher(api)) for api in (api_a, api_a, api_b, api_b)]
    await produce(bootstrap, f"{worker_group.settings.topic_prefix}.{tenant}.ingress",
                  [(None, json.dumps({"n": n}).encode(),
                    ce_headers(tenant, "order.placed", event_id=eid, source="shop"))
                   for n, eid in enumerate(ingress_ids)])
    await asyncio.sleep(1.0)
    worker_group.kill(a)  # SIGKILL mid-stream
    await asyncio.sleep(2.0)
    stop.set()
    await asyncio.gather(*tasks)
    assert len(acked) > 50, "the load did not run"

    expected = acked | set(ingress_ids)
    records = await consume_all(bootstrap, topics, expect=len(expected) + 10_000, timeout=60)
    seen = {header(r, "ce_id") for r in records}
    missing = expected - seen
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"


async def test_critical_ingress_is_not_delayed_by_a_normal_backlog(worker_group, http,
                                                                    bootstrap) -> None:
    port = worker_group.start()
    tenant = unique()
    api = Api(http, worker_group.url(port), worker_group.token(tenant))
    status, body = await api.post("/api/v1/streams", {"stream_name": "alerts",
                                                      "source_capability": "mon"})
    assert status == 201
    await wait_router_assigned(http, worker_group.url(port), minimum=4 * 3,
                               operator_token=worker_group.token(tenant, roles=["operator"]))
    prefix = worker_group.settings.topic_prefix
    backlog = 60_000
    payload = json.dumps({"pad": "x" * 150}).encode()
    await produce(bootstrap, f"{prefix}.{tenant}.ingress",
                  [(None, payload, ce_headers(tenant, "metric.sample", source="mon"))
                   for _ in range(backlog)])
    critical_id = ids.event_id()
    await produce(bootstrap, f"{prefix}.{tenant}.ingress.critical",
                  [(None, b"{}", ce_headers(tenant, "system.down", event_id=critical_id,
                                            source="mon", priority="CRITICAL"))])
    (record,) = await consume_all(bootstrap, [body["stream"]["topics"]["CRITICAL"]], expect=1)
    normal_done = await committed_total(bootstrap, f"{prefix}-router-normal",
                                        f"{prefix}.{tenant}.ingress", 3)
    assert header(record, "ce_id") == critical_id
    assert normal_done < backlog, "the critical event waited for the whole normal backlog"
