"""A job outlives the replica that ran it (ADR 0016): after a SIGKILL and a restart of the
replica, the job it was running is taken over at start-up (resumed, since a replay watch can
run again from its record), never left ``running`` with nobody behind it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import Api, WorkerGroup, eventually, unique

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


async def test_a_restarted_replica_takes_over_its_running_job(worker_group: WorkerGroup,
                                                              http: Any) -> None:
    port = worker_group.start()
    tenant = unique()
    api = Api(http, worker_group.url(port), worker_group.token(tenant))
    stream = unique("s")
    assert (await api.post("/api/v1/streams", {"stream_name": stream}))[0] == 201
    status, sub = await api.post("/api/v1/subscriptions", {  # WebSocket: nobody consumes, so
        "subscription_name": unique("ws"), "stream_id": stream,  # its replay job keeps running
        "consumer_group_id": "g"})
    assert status == 201, sub
    status, body = await api.post("/api/v1/events/batch", {"events": [
        {"event_type": "a.b", "source_capability": "c", "stream_id": stream,
         "payload": {"n": i}} for i in range(4)]})
    assert status == 201, body
    sub_path = f"/api/v1/subscriptions/{sub['subscription_id']}"
    status, job = await api.post(f"{sub_path}/replay", {"from_offset": 0})
    assert status == 202 and job["status"] == "running", job
    before = job["runner"]

    worker_group.kill(port)  # SIGKILL: the job's runner dies with it
    worker_group.start(port)

    async def taken_over() -> Any:
        status, record = await api.get(f"/api/v1/jobs/{job['job_id']}")
        return status == 200 and record.get("attempts") == 2 and record

    record = await eventually(taken_over, timeout=60)
    assert record["status"] == "running" and record["resumed_at"]
    assert record["runner"]["replica"] == before["replica"]
    assert record["runner"]["incarnation"] != before["incarnation"]
    # the resumed watch is alive: it notices the subscription going away
    assert (await api.request("DELETE", sub_path))[0] == 200

    async def ended() -> Any:
        _, record = await api.get(f"/api/v1/jobs/{job['job_id']}")
        return record["status"] != "running" and record

    record = await eventually(ended, timeout=30)
    assert record["status"] == "failed" and "cancelled" in record["error"], record
