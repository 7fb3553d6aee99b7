"""The audit trail through a real worker (ADR 0017): what is recorded, what is not, tenant
scoping, admin-only reads, and proofs a client checks with its own Merkle code and the key."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from esb.audit import merkle
from tests.support import unique

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

ADMIN = ["admin"]


async def _entries(api) -> list[dict]:  # type: ignore[no-untyped-def]
    status, body = await api.get("/api/v1/audit?limit=1000")
    assert status == 200, body
    return body["entries"]


async def test_changes_and_refusals_are_recorded_reads_and_publishes_are_not(api_for) -> None:
    tenant, name = unique(), unique("s")
    admin, reader = api_for(tenant, ADMIN), api_for(tenant, ["reader"])
    status, body = await admin.post("/api/v1/streams", {"stream_name": name,
                                                        "description": "desc-not-audited"},
                                    headers={"X-Request-Id": "req-create-1"})
    assert status == 201, body
    assert (await admin.get(f"/api/v1/streams/{name}"))[0] == 200
    status, _ = await admin.post("/api/v1/events", {
        "event_type": "user.created", "source_capability": "cap", "stream_name": name,
        "payload": {"user": "u1"}})
    assert status == 201
    assert (await admin.post("/api/v1/streams", {"stream_name": name}))[0] == 409
    assert (await reader.get("/api/v1/audit"))[0] == 403  # readers may not read the trail

    entries = await _entries(admin)
    assert [(e["operation"], e["outcome"], e["kind"]) for e in entries] == [
        ("create_stream", 201, "change"), ("create_stream", 409, "change"),
        ("list_audit_entries", 403, "refused")], entries
    created = entries[0]
    assert created["tenant"] == tenant and created["actor"] == "tester"
    assert created["request_id"] == "req-create-1" and created["method"] == "POST"
    assert created["target"] == {"stream_id": f"str_{name}"}
    assert [e["seq"] for e in entries] == [0, 1, 2]
    assert entries[1]["request_id"].startswith("req_")  # made by the bus when not sent
    assert "desc-not-audited" not in str(entries)  # request bodies are never stored


async def test_secrets_in_answers_are_not_recorded(api_for) -> None:
    tenant, name = unique(), unique("s")
    admin = api_for(tenant, ADMIN)
    assert (await admin.post("/api/v1/streams", {"stream_name": name}))[0] == 201
    status, sub = await admin.post("/api/v1/subscriptions", {
        "subscription_name": "audited", "stream_id": name, "consumer_group_id": "g1",
        "webhook_url": "https://93.184.216.34/hook"})
    assert status == 201, sub
    assert sub["webhook_secret"]
    status, rotated = await admin.post(
        f"/api/v1/subscriptions/{sub['subscription_id']}/rotate-secret")
    assert status == 200, rotated
    entries = await _entries(admin)
    assert [e["operation"] for e in entries] == ["create_stream", "create_subscription",
                                                 "rotate_subscription_secret"]
    assert entries[1]["target"]["subscription_id"] == sub["subscription_id"]
    text = str(entries)
    assert sub["webhook_secret"] not in text
    assert all(str(v) not in text for k, v in rotated.items() if "secret" in k and v)


async def test_each_tenant_sees_only_its_own_log(api_for) -> None:
    a, b = api_for(unique(), ADMIN), api_for(unique(), ADMIN)
    assert (await a.post("/api/v1/streams", {"stream_name": unique("s")}))[0] == 201
    assert await _entries(b) == []
    assert (await b.get("/api/v1/audit/proof/0"))[0] == 404
    assert len(await _entries(a)) == 1


async def test_checkpoint_and_proofs_verify_with_the_published_key(api_for) -> None:
    api = api_for(unique(), ADMIN)
    for _ in range(3):
        assert (await api.post("/api/v1/streams", {"stream_name": unique("s")}))[0] == 201
    status, first = await api.post("/api/v1/audit/checkpoint")
    assert status == 200 and first["checkpoint"]["tree_size"] == 3, first
    assert (await api.post("/api/v1/streams", {"stream_name": unique("s")}))[0] == 201
    status, second = await api.post("/api/v1/audit/checkpoint")
    # the first checkpoint request was itself a change: entry 3; then the 4th stream
    assert second["checkpoint"]["tree_size"] == 5, second

    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(second["public_key"]))
    status, proof = await api.get("/api/v1/audit/proof/1?from_size=3")
    assert status == 200, proof
    cp = proof["checkpoint"]
    key.verify(base64.b64decode(cp["signature"]), cp["note"].encode())
    root = bytes.fromhex(proof["root"])
    assert base64.b64encode(root).decode() in cp["note"] and "size: 5" in cp["note"]
    leaf = merkle.leaf_hash(proof["entry_bytes"].encode())
    merkle.verify_inclusion(1, 5, leaf, [bytes.fromhex(h) for h in proof["inclusion"]], root)
    old = proof["consistency"]
    key.verify(base64.b64decode(old["from_checkpoint"]["signature"]),
               old["from_checkpoint"]["note"].encode())
    merkle.verify_consistency(3, 5, bytes.fromhex(old["from_root"]), root,
                              [bytes.fromhex(h) for h in old["proof"]])
    # what the log lists is what the proof covers
    assert (await _entries(api))[1]["leaf_hash"] == leaf.hex()


@pytest.mark.parametrize(("path", "status"), [
    ("/api/v1/audit/proof/abc", 400), ("/api/v1/audit/proof/0?tree_size=x", 400),
    ("/api/v1/audit/proof/99", 404), ("/api/v1/audit?limit=0", 400),
    ("/api/v1/audit/proof/0?from_size=77", 404)])
async def test_bad_input_is_a_problem_not_a_500(api_for, path: str, status: int) -> None:
    api = api_for(unique(), ADMIN)
    assert (await api.post("/api/v1/streams", {"stream_name": unique("s")}))[0] == 201
    assert (await api.post("/api/v1/audit/checkpoint"))[0] == 200
    got, body = await api.get(path)
    assert got == status, body
    assert body["code"]
