"""A subscription replay is a job (ADR 0016): ``POST .../replay`` answers 202 with the job
(``Location: /api/v1/jobs/{id}``) and the seed's fields; the job's progress is the group's
position against the end offsets of the moment of the request, and it succeeds once the
subscription has redelivered up to them. Jobs are tenant-scoped."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.delivery_e2e.conftest import make_stream, publish, subscribe
from tests.support import eventually, unique

pytestmark = [pytest.mark.integration, pytest.mark.redis]

PATH = "replayjob"


async def test_replay_job_runs_to_succeeded_with_progress_reaching_the_total(
        dapi, receiver, http) -> None:
    tenant = unique()
    api = dapi(tenant)
    stream = await make_stream(api)
    sub_id = (await subscribe(api, stream, receiver.url(PATH)))["subscription_id"]
    ids = await publish(api, 12, keys=12)

    async def delivered() -> bool:
        return set(receiver.ids(PATH)) >= set(ids)

    await eventually(delivered, timeout=60)
    seen = len(receiver.on(PATH))
    async with http.post(api.base + f"/api/v1/subscriptions/{sub_id}/replay",
                         json={"from_offset": 0}, headers=api.headers()) as resp:
        assert resp.status == 202, await resp.text()
        body = await resp.json()
        location = resp.headers["Location"]
    # the seed's fields, and the job resource's (the same shape as GET /jobs/{id})
    assert body["subscription_id"] == sub_id and body["replay_id"].startswith("rpl")
    assert body["message"] == "Replay requested" and body["offsets"]
    assert location == f"/api/v1/jobs/{body['job_id']}"
    assert body["kind"] == "subscription_replay" and body["status"] == "running"
    assert body["progress"] == {"total": 12, "done": 0, "failed": 0}, body["progress"]

    states: list[tuple[str, int]] = []

    async def finished() -> Any:
        status, job = await api.get(location)
        assert status == 200, job
        states.append((job["status"], job["progress"]["done"]))
        return job["status"] != "running" and job

    job = await eventually(finished, timeout=90, interval=0.2)
    assert job["status"] == "succeeded", job
    assert job["progress"] == {"total": 12, "done": 12, "failed": 0}
    assert job["result"]["replay_id"] == body["replay_id"] and job["finished_at"]
    assert states[0][0] == "running"
    assert set(receiver.ids(PATH)[seen:]) >= set(ids)  # every event delivered again

    # another tenant's token does not see the job
    status, problem = await dapi(unique()).get(location)
    assert status == 404 and problem["code"] == "not_found"


async def test_replay_job_of_a_subscription_cancelled_meanwhile_fails_with_a_reason(
        dapi) -> None:
    api = dapi(unique())
    stream = await make_stream(api)
    status, sub = await api.post("/api/v1/subscriptions", {  # WebSocket: nobody consumes
        "subscription_name": unique("ws"), "stream_id": stream, "consumer_group_id": "g"})
    assert status == 201, sub
    await publish(api, 4, keys=4)
    status, body = await api.post(f"/api/v1/subscriptions/{sub['subscription_id']}/replay",
                                  {"from_offset": 0})
    assert status == 202 and body["progress"]["total"] == 4, body
    sub_path = f"/api/v1/subscriptions/{sub['subscription_id']}"
    assert (await api.request("DELETE", sub_path))[0] == 200

    async def failed() -> Any:
        _, job = await api.get(f"/api/v1/jobs/{body['job_id']}")
        return job["status"] != "running" and job

    job = await eventually(failed, timeout=30)
    assert job["status"] == "failed" and "cancelled" in job["error"], job
