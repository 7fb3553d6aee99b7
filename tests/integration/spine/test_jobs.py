"""Long operations as jobs (ADR 0016): a bulk dead-letter redrive with ``Prefer: respond-async``
answers 202 with a job resource at once; the job's status and progress are readable until it
has redriven every matching dead letter."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import ce_headers, consume_all, eventually, produce, unique

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

V1 = "/api/v1"


async def test_bulk_redrive_as_a_job_reports_status_and_progress(api_for, bus, bootstrap,
                                                                 http) -> None:
    group, _ = bus
    tenant = unique("qj")
    api = api_for(tenant, roles=["admin"])
    status, body = await api.post(f"{V1}/streams", {"stream_name": unique("js"),
                                                    "source_capability": "jobs_src"})
    assert status == 201, body  # creates the tenant's ingress
    reason = unique("nowhere")  # no stream takes this source: each record is dead-lettered
    await produce(bootstrap, f"{group.settings.topic_prefix}.{tenant}.ingress", [
        (b"k", b"{}", ce_headers(tenant, "job.test", source=reason)) for _ in range(5)])

    async def dead() -> Any:
        s, b = await api.get(f"{V1}/dead-letters?limit=100")
        return s == 200 and len(b["dead_letters"]) >= 5 and b["dead_letters"]

    await eventually(dead, timeout=60)
    status, body = await api.post(f"{V1}/streams", {"stream_name": unique("js"),
                                                    "source_capability": reason})
    assert status == 201, body  # now they have a route: redriven, they land here
    target = body["stream"]
    async with http.post(api.base + f"{V1}/dead-letters/redrive", json={"reason": "no_route"},
                         headers=api.headers({"Prefer": "respond-async"})) as resp:
        assert resp.status == 202, await resp.text()
        job = await resp.json()
        location = resp.headers["Location"]
        assert resp.headers["Preference-Applied"] == "respond-async"
    assert location == f"{V1}/jobs/{job['job_id']}"
    assert job["kind"] == "dead_letter_redrive" and job["progress"]["total"] == 5

    async def finished() -> Any:
        s, b = await api.get(location)
        return s == 200 and b["status"] != "running" and b

    done = await eventually(finished, timeout=30)
    assert done["status"] == "succeeded", done
    assert done["progress"] == {"total": 5, "done": 5, "failed": 0}
    records = await consume_all(bootstrap, target["topics"].values(), expect=5, timeout=30)
    assert len(records) == 5
    # another tenant cannot see the job; an unknown id is a 404
    status, _ = await api_for(unique("qo"), roles=["admin"]).get(location)
    assert status == 404
    status, body = await api.get(f"{V1}/jobs/job_nope")
    assert status == 404 and body["code"] == "not_found"
