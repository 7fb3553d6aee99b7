"""The audit store: one append-only, gapless log per tenant in PostgreSQL, and its checkpoints.

Appending increments the log's head row and inserts the entries in one transaction: the head's
row lock serialises writers of one log, so sequence numbers have no gaps and no duplicates even
with several replicas (a failed insert rolls the head back). Within a replica,
:class:`esb.audit.batch.AppendBatcher` keeps one writer per log that appends everything queued
meanwhile in one such transaction, so a burst costs a few transactions, not one lock wait
each. Rows are never updated or deleted (a trigger refuses it); the Merkle tree over the stored
bytes proves it to anyone holding a signed checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from esb.audit import merkle
from esb.audit.checkpoints import Checkpoint, Signer
from esb.audit.entry import AuditRecord, encode
from esb.db import Database, storage_errors
from esb.errors import ConfigurationError, Conflict, NotFound

MAX_PAGE = 1000
#: one replica at a time signs periodic checkpoints (pg_try_advisory_xact_lock key)
_CHECKPOINT_LOCK = "esb.audit.checkpoints"


@dataclass(frozen=True, slots=True)
class StoredEntry:
    seq: int
    entry: bytes
    leaf_hash: bytes


class AuditLog:
    """Append, read, checkpoint and prove, over :class:`esb.db.Database`."""

    def __init__(self, database: Database) -> None:
        self.db = database

    async def append(self, record: AuditRecord) -> int:
        """Append ``record`` to its tenant's log; returns its sequence number (leaf index)."""
        return (await self.append_many(record.tenant, [record]))[0]

    async def append_many(self, log: str, records: Sequence[AuditRecord]) -> list[int]:
        """Append ``records`` (all of log ``log``), in order, in one transaction: the head
        moves by their number once, then every entry is encoded with its own ``seq`` and
        inserted (pipelined). Returns their sequence numbers."""
        if any(r.tenant != log for r in records):
            raise ValueError("every record of a batch belongs to the same log")
        if not records:
            return []
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO audit_heads (log, size) VALUES (%s, %s) ON CONFLICT (log) "
                "DO UPDATE SET size = audit_heads.size + EXCLUDED.size RETURNING size",
                (log, len(records)))
            row = await cur.fetchone()
            assert row is not None
            first = int(row["size"]) - len(records)
            rows = []
            for seq, record in enumerate(records, start=first):
                entry = encode(record, seq)
                rows.append((log, seq, entry, merkle.leaf_hash(entry)))
            async with conn.cursor() as insert:
                await insert.executemany(
                    "INSERT INTO audit_entries (log, seq, entry, leaf_hash) "
                    "VALUES (%s, %s, %s, %s)", rows)
        return list(range(first, first + len(records)))

    async def size(self, log: str) -> int:
        async with self.db.connection() as conn:
            cur = await conn.execute("SELECT size FROM audit_heads WHERE log = %s", (log,))
            row = await cur.fetchone()
        return int(row["size"]) if row else 0

    async def page(self, log: str, *, after: int = -1, limit: int = 100) -> list[StoredEntry]:
        """Entries with ``seq > after``, oldest first (keyset paging)."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT seq, entry, leaf_hash FROM audit_entries WHERE log = %s AND seq > %s "
                "ORDER BY seq LIMIT %s", (log, after, min(limit, MAX_PAGE)))
            rows = await cur.fetchall()
        return [_entry(r) for r in rows]

    async def leaf_hashes(self, conn: Any, log: str, size: int) -> list[bytes]:
        """Leaf hashes of the first ``size`` entries, recomputed from the stored bytes."""
        cur = await conn.execute(
            "SELECT entry FROM audit_entries WHERE log = %s AND seq < %s ORDER BY seq",
            (log, size))
        hashes = [merkle.leaf_hash(bytes(r["entry"])) for r in await cur.fetchall()]
        if len(hashes) != size:
            raise Conflict(f"audit log {log!r} has {len(hashes)} entries below {size}",
                           log=log)
        return hashes

    # --- checkpoints ---------------------------------------------------------------------

    async def checkpoint(self, log: str, signer: Signer) -> Checkpoint | None:
        """Sign the log's current size and root (None for an empty log); the latest
        checkpoint when nothing was appended since."""
        async with self.db.connection() as conn:
            cur = await conn.execute("SELECT size FROM audit_heads WHERE log = %s", (log,))
            head = await cur.fetchone()
            size = int(head["size"]) if head else 0
            if size == 0:
                return None
            latest = await _latest(conn, log)
            if latest is not None and latest.tree_size >= size:
                return latest
            root = merkle.root(await self.leaf_hashes(conn, log, size))
            cp = signer.sign(log, size, root)
            await conn.execute(
                "INSERT INTO audit_checkpoints (log, tree_size, root, signed_at, key_id, "
                "signature) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (log, size, root, cp.signed_at, cp.key_id, cp.signature))
            stored = await _at(conn, log, size)
        return stored

    async def checkpoint_all(self, signer: Signer) -> list[Checkpoint]:
        """Checkpoint every log that grew since its last checkpoint; skipped while another
        replica is doing it."""
        async with self.db.connection() as conn:
            cur = await conn.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))"
                                     " AS got", (_CHECKPOINT_LOCK,))
            got = await cur.fetchone()
            if not got or not got["got"]:
                return []
            cur = await conn.execute(
                "SELECT h.log FROM audit_heads h WHERE h.size > COALESCE((SELECT max(tree_size)"
                " FROM audit_checkpoints c WHERE c.log = h.log), 0)")
            logs = [r["log"] for r in await cur.fetchall()]
        made = [await self.checkpoint(log, signer) for log in logs]
        return [cp for cp in made if cp is not None]

    async def latest_checkpoint(self, log: str) -> Checkpoint | None:
        async with self.db.connection() as conn:
            return await _latest(conn, log)

    async def proof(self, log: str, seq: int, *, tree_size: int | None = None,
                    from_size: int | None = None) -> dict[str, Any]:
        """Inclusion proof of entry ``seq`` in a signed checkpoint (the latest by default), and
        optionally a consistency proof from the checkpoint of ``from_size`` to that one."""
        async with self.db.connection() as conn:
            cp = await (_at(conn, log, tree_size) if tree_size is not None
                        else _latest(conn, log))
            if cp is None:
                raise NotFound("no signed audit checkpoint" + (
                    f" of size {tree_size}" if tree_size is not None else " yet"),
                    tree_size=tree_size)
            cur = await conn.execute("SELECT seq, entry, leaf_hash FROM audit_entries "
                                     "WHERE log = %s AND seq = %s", (log, seq))
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"no audit entry {seq}", entry=seq)
            if seq >= cp.tree_size:
                raise Conflict(f"entry {seq} is not covered by the checkpoint of size "
                               f"{cp.tree_size} yet; request a checkpoint", entry=seq)
            leaves = await self.leaf_hashes(conn, log, cp.tree_size)
            old = None
            if from_size is not None:
                old = await _at(conn, log, from_size)
                if old is None or from_size > cp.tree_size:
                    raise NotFound(f"no signed audit checkpoint of size {from_size} at or "
                                   f"before size {cp.tree_size}", from_size=from_size)
        entry = _entry(row)
        body: dict[str, Any] = {
            "entry": seq, "leaf_index": seq, "leaf_hash": entry.leaf_hash.hex(),
            "entry_bytes": entry.entry.decode("utf-8"),
            "tree_size": cp.tree_size, "root": cp.root.hex(), "checkpoint": cp.to_json(),
            "inclusion": [h.hex() for h in merkle.inclusion_proof(seq, leaves)]}
        if old is not None:
            body["consistency"] = {
                "from_size": old.tree_size, "from_root": old.root.hex(),
                "from_checkpoint": old.to_json(),
                "proof": [h.hex() for h in merkle.consistency_proof(old.tree_size, leaves)]}
        return body


def _entry(row: Any) -> StoredEntry:
    return StoredEntry(int(row["seq"]), bytes(row["entry"]), bytes(row["leaf_hash"]))


def _checkpoint(row: Any) -> Checkpoint:
    return Checkpoint(row["log"], int(row["tree_size"]), bytes(row["root"]), row["signed_at"],
                      row["key_id"], bytes(row["signature"]))


async def _latest(conn: Any, log: str) -> Checkpoint | None:
    cur = await conn.execute("SELECT * FROM audit_checkpoints WHERE log = %s "
                             "ORDER BY tree_size DESC LIMIT 1", (log,))
    row = await cur.fetchone()
    return _checkpoint(row) if row else None


async def _at(conn: Any, log: str, size: int) -> Checkpoint | None:
    cur = await conn.execute("SELECT * FROM audit_checkpoints WHERE log = %s AND tree_size = %s",
                             (log, size))
    row = await cur.fetchone()
    return _checkpoint(row) if row else None


async def read_everything(url: str, schema: str, logs: Sequence[str] | None = None
                          ) -> dict[str, tuple[list[StoredEntry], list[Checkpoint]]]:
    """Every entry and checkpoint of ``logs`` (all logs when None), from one read-only snapshot
    and without migrating anything: what ``esb audit verify`` checks. Logs are found in the
    entries and checkpoints themselves, not in the head rows (which nobody signs)."""
    import psycopg
    from psycopg.rows import dict_row

    out: dict[str, tuple[list[StoredEntry], list[Checkpoint]]] = {}
    with storage_errors("PostgreSQL"):
        async with await psycopg.AsyncConnection.connect(
                url, row_factory=dict_row, connect_timeout=5,
                options=f"-c search_path={schema}") as conn:
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            try:
                await conn.execute("SELECT 1 FROM audit_entries LIMIT 0")
            except psycopg.errors.UndefinedTable:
                raise ConfigurationError(f"schema {schema!r} holds no audit trail (wrong "
                                         "ESB_DATABASE_SCHEMA?)") from None
            if logs is None:
                cur = await conn.execute("SELECT log FROM audit_entries UNION "
                                         "SELECT log FROM audit_checkpoints")
                logs = sorted(r["log"] for r in await cur.fetchall())
            for log in logs:
                cur = await conn.execute("SELECT seq, entry, leaf_hash FROM audit_entries "
                                         "WHERE log = %s ORDER BY seq", (log,))
                entries = [_entry(r) for r in await cur.fetchall()]
                cur = await conn.execute("SELECT * FROM audit_checkpoints WHERE log = %s "
                                         "ORDER BY tree_size", (log,))
                out[log] = (entries, [_checkpoint(r) for r in await cur.fetchall()])
    return out
