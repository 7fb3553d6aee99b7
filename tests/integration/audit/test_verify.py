"""The audit store on real PostgreSQL, and ``esb audit verify`` against one altered, deleted or
reordered entry (ADR 0017). Tampering is done the way an attacker with database rights would:
append-only triggers disabled, rows rewritten with SQL."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from esb.audit import merkle
from esb.audit.checkpoints import Signer, public_key_b64
from esb.audit.entry import AuditRecord, decode
from esb.audit.log import AuditLog
from esb.db import Database

pytestmark = [pytest.mark.postgres]

TENANT, OTHER = "acme", "globex"


def _record(tenant: str, n: int, **kw: Any) -> AuditRecord:
    return AuditRecord(tenant=tenant, actor=f"user-{n}", request_id=f"req-{n}", method="POST",
                       operation="create_stream", outcome=201,
                       target={"stream_id": f"str_s{n}"}, **kw)


async def _filled(db: Database, signer: Signer) -> AuditLog:
    """acme: 7 entries, checkpoints at 4 and 7; globex: 2 entries, one checkpoint."""
    log = AuditLog(db)
    for n in range(4):
        await log.append(_record(TENANT, n))
    await log.checkpoint(TENANT, signer)
    for n in range(4, 7):
        await log.append(_record(TENANT, n))
    await log.append(_record(OTHER, 0))
    await log.append(_record(OTHER, 1, kind="refused"))
    await log.checkpoint_all(signer)
    return log


def _sql(db: Database, *statements: str) -> None:
    """Tamper as a database owner would: switch the append-only triggers off first."""
    with psycopg.connect(db.url, autocommit=True, options=f"-c search_path={db.schema}") as conn:
        conn.execute("ALTER TABLE audit_entries DISABLE TRIGGER USER")
        conn.execute("ALTER TABLE audit_checkpoints DISABLE TRIGGER USER")
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


def _env(db: Database) -> dict[str, str]:
    return {"ESB_DATABASE_URL": db.url, "ESB_DATABASE_SCHEMA": db.schema,
            "ESB_MODE": "development"}


def _verify_cli(db: Database, public_key: str, *extra: str) -> tuple[int, str]:
    """``esb audit verify`` as an operator runs it (a process of its own)."""
    done = subprocess.run([sys.executable, "-m", "esb.cli", "audit", "verify", "--public-key",
                           public_key, *extra], env={**os.environ, **_env(db)},
                          capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def verify_here(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """The same command in this process (fast, for the many tampering cases)."""
    from esb.cli import main
    from esb.settings import get_settings

    def run(db: Database, public_key: str, *extra: str) -> tuple[int, str]:
        for name, value in _env(db).items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        try:
            code = main(["audit", "verify", "--public-key", public_key, *extra])
        finally:
            get_settings.cache_clear()
        out = capsys.readouterr()
        return code, out.out + out.err

    return run


@pytest.fixture
def signer() -> Signer:
    return Signer(Ed25519PrivateKey.generate())


async def test_appends_are_gapless_and_tenant_scoped_under_concurrency(audit_db: Database
                                                                       ) -> None:
    log = AuditLog(audit_db)
    seqs = await asyncio.gather(*(log.append(_record(TENANT if n % 3 else OTHER, n))
                                  for n in range(30)))
    assert sorted(s for n, s in enumerate(seqs) if n % 3) == list(range(20))
    assert sorted(s for n, s in enumerate(seqs) if not n % 3) == list(range(10))
    page = await log.page(OTHER, limit=100)
    assert [e.seq for e in page] == list(range(10))
    assert {decode(e.entry)["tenant"] for e in page} == {OTHER}
    assert all(decode(e.entry)["seq"] == e.seq for e in page)


async def test_the_tables_refuse_updates_and_deletes(audit_db: Database, signer: Signer) -> None:
    await _filled(audit_db, signer)
    for statement in ("UPDATE audit_entries SET entry = 'x' WHERE seq = 0",
                      "DELETE FROM audit_entries WHERE seq = 0",
                      "DELETE FROM audit_checkpoints"):
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            async with audit_db.connection() as conn:
                await conn.execute(statement)  # type: ignore[arg-type]


async def test_proofs_verify_independently(audit_db: Database, signer: Signer) -> None:
    log = await _filled(audit_db, signer)
    proof = await log.proof(TENANT, 2, from_size=4)
    assert proof["tree_size"] == 7
    leaf = merkle.leaf_hash(proof["entry_bytes"].encode())
    assert leaf.hex() == proof["leaf_hash"]
    merkle.verify_inclusion(2, 7, leaf, [bytes.fromhex(h) for h in proof["inclusion"]],
                            bytes.fromhex(proof["root"]))
    consistency = proof["consistency"]
    merkle.verify_consistency(4, 7, bytes.fromhex(consistency["from_root"]),
                              bytes.fromhex(proof["root"]),
                              [bytes.fromhex(h) for h in consistency["proof"]])
    # the checkpoint's signature covers exactly the note it shows
    note = proof["checkpoint"]["note"].encode()
    signer.public.verify(base64.b64decode(proof["checkpoint"]["signature"]), note)
    assert f"size: 7\nroot: {base64.b64encode(bytes.fromhex(proof['root'])).decode()}" in \
        note.decode()


async def test_checkpoint_is_not_resigned_without_new_entries(audit_db: Database,
                                                              signer: Signer) -> None:
    log = await _filled(audit_db, signer)
    latest = await log.latest_checkpoint(TENANT)
    assert latest is not None
    again = await log.checkpoint(TENANT, signer)
    assert again == latest
    assert await log.checkpoint_all(signer) == []


def test_untouched_log_verifies(audit_db: Database, signer: Signer) -> None:
    asyncio.run(_filled_and_close(audit_db.url, audit_db.schema, signer))
    code, out = _verify_cli(audit_db, public_key_b64(signer.public), "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["ok"] is True
    assert {(r["log"], r["entries"], r["signed_size"]) for r in report["logs"]} == {
        (TENANT, 7, 7), (OTHER, 2, 2)}


async def _filled_and_close(url: str, schema: str, signer: Signer) -> None:
    async with Database(url, schema=schema, max_size=2) as db:
        await _filled(db, signer)


def _swap(a: int, b: int) -> str:
    """Entries ``a`` and ``b`` trade places (bytes and stored hashes move together)."""
    return (f"UPDATE audit_entries t SET entry = s.entry, leaf_hash = s.leaf_hash "
            f"FROM audit_entries s WHERE t.log = '{TENANT}' AND s.log = '{TENANT}' "
            f"AND ((t.seq = {a} AND s.seq = {b}) OR (t.seq = {b} AND s.seq = {a}))")


def _rehash(seq: int) -> str:
    """Alter entry ``seq`` and recompute its stored leaf hash (the careful attacker)."""
    return (f"UPDATE audit_entries SET entry = convert_to(replace(convert_from(entry, 'UTF8'),"
            f" 'user-{seq}', 'someone'), 'UTF8') WHERE log = '{TENANT}' AND seq = {seq}; "
            f"UPDATE audit_entries SET leaf_hash = sha256('\\x00'::bytea || entry) "
            f"WHERE log = '{TENANT}' AND seq = {seq}")


@pytest.mark.parametrize(("tampering", "expected"), [
    pytest.param([f"UPDATE audit_entries SET entry = convert_to(replace(convert_from(entry, "
                  f"'UTF8'), '201', '403'), 'UTF8') WHERE log = '{TENANT}' AND seq = 5"],
                 "entry seq 5 does not match its recorded leaf hash", id="altered"),
    pytest.param([_rehash(2)], "entries 0..3 do not hash to the root", id="altered-rehashed"),
    pytest.param([f"DELETE FROM audit_entries WHERE log = '{TENANT}' AND seq = 3"],
                 "entry seq 3 is missing", id="deleted"),
    pytest.param([f"DELETE FROM audit_entries WHERE log = '{TENANT}' AND seq = 6"],
                 "covers 7 entries but only 6 are stored", id="deleted-last"),
    pytest.param([_swap(4, 5)], "entry stored at seq 4 was written as seq 5", id="reordered"),
    pytest.param([f"UPDATE audit_checkpoints SET tree_size = 6 WHERE log = '{TENANT}' "
                  "AND tree_size = 7"], "does not carry a valid signature",
                 id="checkpoint-altered"),
])
def test_verify_detects_one_tampered_entry(audit_db: Database, signer: Signer, verify_here: Any,
                                           tampering: list[str], expected: str) -> None:
    asyncio.run(_filled_and_close(audit_db.url, audit_db.schema, signer))
    _sql(audit_db, *tampering)
    code, out = verify_here(audit_db, public_key_b64(signer.public))
    assert code == 4, out
    assert expected in out, out
    assert f"FAILED log '{TENANT}'" in out and f"ok     log '{OTHER}'" in out, out


def test_verify_refuses_another_key(audit_db: Database, signer: Signer,
                                    verify_here: Any) -> None:
    asyncio.run(_filled_and_close(audit_db.url, audit_db.schema, signer))
    other = public_key_b64(Ed25519PrivateKey.generate().public_key())
    code, out = verify_here(audit_db, other, "--tenant", OTHER)
    assert code == 4 and "does not carry a valid signature" in out, out
    assert TENANT not in out


async def test_the_service_signs_grown_logs_at_intervals(audit_db: Database, tmp_path) -> None:
    from esb.audit.service import AuditService
    from esb.settings import Settings

    settings = Settings(mode="development", data_dir=tmp_path, audit_checkpoint_interval_s=0.5)
    service = AuditService(settings, lambda: audit_db)
    log = AuditLog(audit_db)
    assert await service.record(_record(TENANT, 0)) == 0
    await service.start()
    try:
        for _ in range(40):
            if (await log.latest_checkpoint(TENANT)) is not None:
                break
            await asyncio.sleep(0.1)
        await service.record(_record(TENANT, 1))
        for _ in range(40):
            latest = await log.latest_checkpoint(TENANT)
            if latest is not None and latest.tree_size == 2:
                break
            await asyncio.sleep(0.1)
    finally:
        await service.stop()
    assert latest is not None and latest.tree_size == 2
    assert latest.key_id == service.signer.key_id
    # the development key lives in the data dir, so every replica and the verifier share it
    assert (tmp_path / "audit-signing-key.pem").stat().st_mode & 0o077 == 0


def test_production_needs_a_configured_key(tmp_path) -> None:
    from esb.audit.checkpoints import signer_from
    from esb.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="ESB_AUDIT_SIGNING_KEY is required"):
        signer_from(None, development=False, data_dir=tmp_path)
    seed = base64.b64encode(bytes(range(32))).decode()
    assert signer_from(seed, development=False, data_dir=tmp_path).key_id == \
        signer_from(seed, development=False, data_dir=tmp_path).key_id
    assert not list(tmp_path.iterdir())  # no key file made outside development
