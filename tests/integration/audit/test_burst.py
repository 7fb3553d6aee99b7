"""Audit appends under bursts (ADR 0017): one writer per tenant's log appends whatever is queued
in one transaction, so hundreds of concurrent audited changes in one tenant all get their entry,
the log stays gapless and ``verify`` passes. Before batching, one transaction per entry waited on
the log's head row with a pooled connection each, and ~150 concurrent changes timed out."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from esb.audit.batch import AppendBatcher
from esb.audit.checkpoints import Signer
from esb.audit.entry import AuditRecord, decode
from esb.audit.log import AuditLog, read_everything
from esb.audit.verify import verify_log
from esb.db import Database
from tests.support import unique

pytestmark = [pytest.mark.postgres]

BURST = 300


def _record(tenant: str, n: int) -> AuditRecord:
    return AuditRecord(tenant=tenant, actor="op", request_id=f"req-{n}", method="POST",
                       operation="create_stream", outcome=201, target={"stream_id": f"s{n}"})


async def test_a_burst_in_one_tenant_is_batched_gapless_and_verifies(audit_db: Database
                                                                     ) -> None:
    log = AuditLog(audit_db)
    batcher = AppendBatcher(log.append_many)
    records = [_record("acme" if n % 10 else "globex", n) for n in range(BURST)]
    seqs = await asyncio.wait_for(asyncio.gather(*(batcher.append(r) for r in records)), 60)
    acme = [s for r, s in zip(records, seqs, strict=True) if r.tenant == "acme"]
    assert sorted(acme) == list(range(len(acme)))  # gapless, no duplicates
    assert len(batcher.batch_sizes) < BURST // 2, batcher.batch_sizes  # batched, not 1 by 1
    stored = {e.seq: decode(e.entry) for e in await log.page("acme", limit=1000)}
    for record, seq in zip(records, seqs, strict=True):
        if record.tenant == "acme":  # each caller got the number of its own entry
            assert stored[seq]["request_id"] == record.request_id
    signer = Signer(Ed25519PrivateKey.generate())
    await log.checkpoint_all(signer)
    everything = await read_everything(audit_db.url, audit_db.schema)
    for name, (entries, checkpoints) in everything.items():
        report = verify_log(name, entries, checkpoints, signer.public)
        assert report.ok and report.signed_size == len(entries), report.to_json()


async def test_a_failed_batch_fails_its_callers_and_the_next_one_goes_on() -> None:
    calls: list[int] = []

    async def append_many(log: str, records: Any) -> list[int]:
        calls.append(len(records))
        await asyncio.sleep(0.01)
        if len(calls) == 1:
            raise RuntimeError("database down")
        return list(range(len(records)))

    batcher = AppendBatcher(append_many)
    first = asyncio.ensure_future(batcher.append(_record("t", 0)))
    await asyncio.sleep(0)  # the writer takes the first record alone
    rest = [asyncio.ensure_future(batcher.append(_record("t", n))) for n in range(1, 5)]
    with pytest.raises(RuntimeError):
        await first
    assert await asyncio.gather(*rest) == [0, 1, 2, 3]
    assert calls == [1, 4]


async def test_hundreds_of_concurrent_audited_changes_through_the_api(api_for, http,
                                                                      database_url: str,
                                                                      bus) -> None:
    group, _ = bus
    tenant = unique()
    admin, reader = api_for(tenant, ["admin"]), api_for(tenant, ["reader"])

    async def change(n: int) -> tuple[str, int]:
        rid = f"burst-{n}"
        headers = {"X-Request-Id": rid}
        if n % 3 == 0:  # a real change: a consumer group
            status, _ = await admin.post("/api/v1/consumer-groups",
                                         {"group_name": f"g{n}"}, headers=headers)
        elif n % 3 == 1:  # a change that fails: still recorded, with its outcome
            status, _ = await admin.request("DELETE", f"/api/v1/read-models/missing{n}",
                                            headers=headers)
        else:  # a refused authorization
            status, _ = await reader.post("/api/v1/streams", {"stream_name": f"s{n}"},
                                          headers=headers)
        return rid, status

    answers = dict(await asyncio.gather(*(change(n) for n in range(BURST))))
    assert sorted(set(answers.values())) == [201, 403, 404], answers
    entries: list[dict[str, Any]] = []
    while True:
        after = f"&after={entries[-1]['seq']}" if entries else ""
        status, page = await admin.get(f"/api/v1/audit?limit=1000{after}")
        assert status == 200, page
        if not page["entries"]:
            break
        entries += page["entries"]
    assert [e["seq"] for e in entries] == list(range(BURST))
    recorded = {e["request_id"]: e["outcome"] for e in entries}
    assert recorded == answers  # every change has its entry, with the answer it got

    status, checkpoint = await admin.post("/api/v1/audit/checkpoint")
    assert status == 200 and checkpoint["checkpoint"]["tree_size"] == BURST, checkpoint
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(checkpoint["public_key"]))
    [(entries_, checkpoints)] = (await read_everything(
        database_url, group.prefix, [tenant])).values()
    report = verify_log(tenant, entries_, checkpoints, public)
    assert report.ok and report.signed_size == BURST, report.to_json()
