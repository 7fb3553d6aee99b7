"""Read-model rebuild and replay as jobs (ADR 0016): with ``Prefer: respond-async`` they
answer 202 with a job whose progress counts the archived events read back, running until it
reaches the total; the job is tenant-scoped. Without the header they stay synchronous."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import Api, WorkerGroup, eventually, unique

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

N = 40


@pytest.fixture(scope="module")
def bus(fresh_bus: tuple[WorkerGroup, int]) -> tuple[WorkerGroup, int]:
    """This module's own worker (it waits on the archive projection; see ``fresh_bus``)."""
    return fresh_bus


async def _job(api: Api, http: Any, path: str, body: Any = None) -> dict[str, Any]:
    async with http.post(api.base + path, json=body,
                         headers=api.headers({"Prefer": "respond-async"})) as resp:
        assert resp.status == 202, await resp.text()
        job = await resp.json()
        assert resp.headers["Location"] == f"/api/v1/jobs/{job['job_id']}"
        assert resp.headers["Preference-Applied"] == "respond-async"
    return job  # type: ignore[no-any-return]


async def _finished(api: Api, job_id: str) -> dict[str, Any]:
    async def done() -> Any:
        status, job = await api.get(f"/api/v1/jobs/{job_id}")
        assert status == 200, job
        return job["status"] != "running" and job

    return await eventually(done, timeout=60)  # type: ignore[no-any-return]


async def test_rebuild_and_replay_jobs_run_to_succeeded(api_for, http) -> None:
    tenant = unique()
    api = api_for(tenant, roles=["admin"])
    stream = unique("s")
    assert (await api.post("/api/v1/streams", {"stream_name": stream}))[0] == 201
    status, body = await api.post("/api/v1/events/batch", {"events": [
        {"event_type": "member.joined", "source_capability": "crm", "stream_id": stream,
         "aggregate_id": f"m{i % 10}", "payload": {"n": i}} for i in range(N)]})
    assert status == 201, body
    last = body["events"][-1]["event_id"]

    async def archived() -> bool:
        status, page = await api.post("/api/v1/events/query", {"event_types": ["member.*"],
                                                               "limit": 1000})
        return status == 200 and page["count"] == N

    await eventually(archived, timeout=90)
    assert (await api.get(f"/api/v1/events/{last}"))[0] == 200
    status, created = await api.post("/api/v1/read-models", {
        "name": "members", "event_types": ["member.*"], "fields": {"n": "payload.n"}})
    assert status == 201, created

    job = await _job(api, http, "/api/v1/read-models/members/rebuild")
    assert job["kind"] == "read_model_rebuild" and job["status"] == "running"
    assert job["read_model"] == "members"
    done = await _finished(api, job["job_id"])
    assert done["status"] == "succeeded", done
    assert done["progress"] == {"total": N, "done": N, "failed": 0}
    assert done["result"] == {"read_model": "members", "changes_applied": N}
    status, docs = await api.get("/api/v1/read-models/members/documents")
    assert status == 200 and len(docs["documents"]) == 10

    job = await _job(api, http, "/api/v1/read-models/members/replay", {"aggregate_id": "m3"})
    done = await _finished(api, job["job_id"])
    assert done["status"] == "succeeded" and done["kind"] == "read_model_replay", done
    assert done["progress"] == {"total": N // 10, "done": N // 10, "failed": 0}

    # another tenant's token: 404, for the job and for the model
    other = api_for(unique(), roles=["admin"])
    assert (await other.get(f"/api/v1/jobs/{job['job_id']}"))[0] == 404
    async with http.post(other.base + "/api/v1/read-models/members/rebuild",
                         headers=other.headers({"Prefer": "respond-async"})) as resp:
        assert resp.status == 404
    # without the preference: the seed's synchronous answer
    status, rebuilt = await api.post("/api/v1/read-models/members/rebuild")
    assert status == 200 and rebuilt == {"read_model": "members", "changes_applied": N}
