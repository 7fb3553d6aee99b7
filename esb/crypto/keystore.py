"""Per-subject data keys in PostgreSQL, wrapped under the master key, with a short-lived cache.

Erasure destroys the wrapped key in the table and this replica's cache at once; other replicas
drop their cached copy within ``cache_ttl_s`` (the only window in which an erased subject's
values can still be opened anywhere; see docs/adr/0018).
"""

from __future__ import annotations

import time
from typing import Any

from esb.crypto.sealing import MasterKey, new_data_key, new_kid
from esb.db import Database

_LIVE = ("SELECT kid, wrapped_dek FROM subject_keys "
         "WHERE tenant_id = %s AND subject_id = %s AND erased_at IS NULL")


class _TtlCache:
    def __init__(self, ttl_s: float, size: int = 50_000) -> None:
        self.ttl_s, self.size = ttl_s, size
        self._items: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> Any:
        hit = self._items.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: Any, value: Any) -> None:
        if len(self._items) >= self.size:
            self._items.clear()
        self._items[key] = (time.monotonic() + self.ttl_s, value)

    def drop(self, predicate: Any) -> None:
        for key in [k for k in self._items if predicate(k)]:
            del self._items[key]


class SubjectKeyStore:
    def __init__(self, db: Database, master: MasterKey, *, cache_ttl_s: float = 5.0) -> None:
        self.db = db
        self.master = master
        self._current = _TtlCache(cache_ttl_s)  # (tenant, subject) -> (kid, dek)
        self._by_kid = _TtlCache(cache_ttl_s)  # (tenant, kid) -> dek | None

    async def current(self, tenant: str, subject: str) -> tuple[str, bytes]:
        """The subject's live key, created on first use (a new one after an erasure)."""
        cached = self._current.get((tenant, subject))
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        async with self.db.connection() as conn:
            row = await (await conn.execute(_LIVE, (tenant, subject))).fetchone()
            if row is None:
                kid, dek = new_kid(), new_data_key()
                await conn.execute(
                    "INSERT INTO subject_keys (tenant_id, subject_id, kid, wrapped_dek) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (tenant, subject, kid, self.master.wrap(dek, tenant, subject, kid)))
                row = await (await conn.execute(_LIVE, (tenant, subject))).fetchone()
        assert row is not None
        kid = row["kid"]
        dek = self.master.unwrap(bytes(row["wrapped_dek"]), tenant, subject, kid)
        self._current.put((tenant, subject), (kid, dek))
        self._by_kid.put((tenant, kid), dek)
        return kid, dek

    async def key(self, tenant: str, kid: str) -> bytes | None:
        """The data key ``kid`` of ``tenant``; ``None`` once erased (or never the tenant's)."""
        cached = self._by_kid.get((tenant, kid))
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        async with self.db.connection() as conn:
            row = await (await conn.execute(
                "SELECT subject_id, wrapped_dek FROM subject_keys "
                "WHERE tenant_id = %s AND kid = %s", (tenant, kid))).fetchone()
        if row is None or row["wrapped_dek"] is None:
            return None
        dek = self.master.unwrap(bytes(row["wrapped_dek"]), tenant, row["subject_id"], kid)
        self._by_kid.put((tenant, kid), dek)
        return dek

    async def erase(self, tenant: str, subject: str) -> list[str]:
        """Destroy every live key of the subject; returns the key ids destroyed."""
        async with self.db.connection() as conn:
            rows = await (await conn.execute(
                "UPDATE subject_keys SET wrapped_dek = NULL, erased_at = now() "
                "WHERE tenant_id = %s AND subject_id = %s AND erased_at IS NULL "
                "RETURNING kid", (tenant, subject))).fetchall()
        kids = {row["kid"] for row in rows}
        self._current.drop(lambda k: k == (tenant, subject))
        self._by_kid.drop(lambda k: k[0] == tenant and k[1] in kids)
        return sorted(kids)
