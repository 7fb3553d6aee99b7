"""The dead-letter index in PostgreSQL: list, read and mark redriven, always scoped to one tenant.

Rows are written by the dead-letter agent from the DLQ topic (idempotent by a deterministic id, so a
re-consumed DLQ record updates rather than duplicates). Only parameterized SQL.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter as Tally
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from esb.deadletter import parse_count, split_headers, time_or, utc_now
from esb.envelope import attributes_for_display
from esb.errors import InvalidRequest, NotFound
from esb.metrics import DEAD_LETTERS, flush_tally

UNATTRIBUTED = ""


@dataclass(slots=True)
class DeadLetterRow:
    """One DLQ topic record, flattened for the index."""

    dlq_topic: str
    dlq_partition: int
    dlq_offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]

    def to_params(self) -> dict[str, Any]:
        """Never fails on what a producer sent: text without NULs (PostgreSQL refuses them),
        counters and times that parse, else defaults. The tenant is only ever the one our
        dead-lettering stage recorded, never a producer's ``ce_tenantid``."""
        original, raw_info = split_headers(self.headers)
        info = {k: _clean(v) for k, v in raw_info.items()}
        ce = {k: _clean(v, 256) for k, v in attributes_for_display(original).items()}
        origin = (info.get("origin-topic") or self.dlq_topic,
                  str(parse_count(info.get("origin-partition"))),
                  str(parse_count(info.get("origin-offset"), self.dlq_offset)))
        return {
            "dlq_id": dead_letter_id(origin, info.get("stage", ""), info.get("destination", ""),
                                     _header(original, "esb-sub-id")),
            "tenant_id": info.get("tenant") or UNATTRIBUTED,
            "event_id": ce.get("id"),
            "event_type": ce.get("type"),
            "stream": ce.get("stream"),
            "reason": info.get("reason", "unknown"),
            "stage": info.get("stage", "unknown"),
            "error": info.get("error", ""),
            "attempts": max(1, parse_count(info.get("attempts"), 1)),
            "origin_topic": origin[0],
            "origin_partition": int(origin[1]),
            "origin_offset": int(origin[2]),
            "destination": info.get("destination", origin[0]),
            "first_failure_at": time_or(info.get("first-failure"), utc_now()),
            "last_failure_at": time_or(info.get("last-failure"), utc_now()),
            "record_key": self.key,
            "record_value": self.value,
            "record_headers": Jsonb([[_clean(k), base64.b64encode(v).decode()]
                                     for k, v in original]
                                    + [[f"esb-dlq-{_clean(k)}",
                                        base64.b64encode(v.encode()).decode()]
                                       for k, v in raw_info.items()]),
            "dlq_topic": self.dlq_topic,
            "dlq_partition": self.dlq_partition,
            "dlq_offset": self.dlq_offset,
        }


def dead_letter_id(origin: tuple[str, str, str], stage: str, destination: str,
                   subscription: str | None) -> str:
    """Deterministic, so a re-consumed DLQ record updates its row instead of duplicating it; the
    destination and subscription are part of it because several subscriptions can dead-letter
    the same stream record."""
    identity = "/".join((*origin, stage, destination, subscription or ""))
    return "dlq_" + hashlib.sha256(identity.encode()).hexdigest()[:32]


def _header(headers: Sequence[tuple[str, bytes]], name: str) -> str | None:
    return next((_clean(v.decode(errors="replace")) for k, v in headers
                 if k == name and v is not None), None)


def _clean(text: str, limit: int = 4000) -> str:
    """Text PostgreSQL accepts: no NUL characters, bounded."""
    return text.replace("\x00", "\ufffd")[:limit]


_UPSERT = """
INSERT INTO dead_letters (dlq_id, tenant_id, event_id, event_type, stream, reason, stage, error,
    attempts, origin_topic, origin_partition, origin_offset, destination, first_failure_at,
    last_failure_at, record_key, record_value, record_headers, dlq_topic, dlq_partition, dlq_offset)
VALUES (%(dlq_id)s, %(tenant_id)s, %(event_id)s, %(event_type)s, %(stream)s, %(reason)s, %(stage)s,
    %(error)s, %(attempts)s, %(origin_topic)s, %(origin_partition)s, %(origin_offset)s,
    %(destination)s, %(first_failure_at)s, %(last_failure_at)s, %(record_key)s, %(record_value)s,
    %(record_headers)s, %(dlq_topic)s, %(dlq_partition)s, %(dlq_offset)s)
ON CONFLICT (dlq_id) DO UPDATE SET
    reason = EXCLUDED.reason, error = EXCLUDED.error, attempts = EXCLUDED.attempts,
    last_failure_at = EXCLUDED.last_failure_at, record_headers = EXCLUDED.record_headers,
    dlq_topic = EXCLUDED.dlq_topic, dlq_partition = EXCLUDED.dlq_partition,
    dlq_offset = EXCLUDED.dlq_offset, status = 'DEAD'
WHERE dead_letters.last_failure_at <= EXCLUDED.last_failure_at
"""

_SUMMARY_COLUMNS = """dlq_id, tenant_id, event_id, event_type, stream, reason, stage, error, attempts,
    origin_topic, origin_partition, origin_offset, destination, first_failure_at, last_failure_at,
    status, redrive_count, redriven_at"""


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    reason: str | None = None
    stage: str | None = None
    event_type: str | None = None
    stream: str | None = None
    status: str | None = "DEAD"
    since: datetime | None = None
    until: datetime | None = None

    def where(self, tenant: str) -> tuple[str, list[Any]]:
        clauses, params = ["tenant_id = %s"], [tenant]
        for column in ("reason", "stage", "event_type", "stream", "status"):
            value = getattr(self, column)
            if value:
                clauses.append(f"{column} = %s")
                params.append(value)
        if self.since:
            clauses.append("last_failure_at >= %s")
            params.append(self.since)
        if self.until:
            clauses.append("last_failure_at < %s")
            params.append(self.until)
        return " AND ".join(clauses), params


class DeadLetterStore:
    def __init__(self, database: Any) -> None:
        self._db = database

    async def upsert(self, rows: Sequence[DeadLetterRow]) -> None:
        if not rows:
            return
        async with self._db.connection() as conn, conn.cursor() as cur:
            await cur.executemany(_UPSERT, [r.to_params() for r in rows])

    async def list(self, tenant: str, flt: DeadLetterFilter, *, limit: int = 100,
                   before: str | None = None) -> list[dict[str, Any]]:
        if not 1 <= limit <= 1000:
            raise InvalidRequest("limit must be between 1 and 1000")
        where, params = flt.where(tenant)
        if before:  # keyset on the sort key: the cursor row's (last_failure_at, dlq_id)
            where += (" AND (last_failure_at, dlq_id) < (SELECT last_failure_at, dlq_id FROM "
                      "dead_letters WHERE tenant_id = %s AND dlq_id = %s)")
            params.extend([tenant, before])
        sql = (f"SELECT {_SUMMARY_COLUMNS} FROM dead_letters WHERE {where} "
               "ORDER BY last_failure_at DESC, dlq_id DESC LIMIT %s")
        async with self._db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, [*params, limit])
            return [_render(r) for r in await cur.fetchall()]

    async def get(self, tenant: str, dlq_id: str) -> dict[str, Any]:
        sql = f"SELECT {_SUMMARY_COLUMNS}, record_key, record_value, record_headers " \
              "FROM dead_letters WHERE tenant_id = %s AND dlq_id = %s"
        async with self._db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, [tenant, dlq_id])
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"dead letter {dlq_id!r} not found", dlq_id=dlq_id)
        return _render(row)

    async def ids_matching(self, tenant: str, flt: DeadLetterFilter, limit: int) -> list[str]:
        where, params = flt.where(tenant)
        async with self._db.connection() as conn, conn.cursor() as cur:
            await cur.execute(f"SELECT dlq_id FROM dead_letters WHERE {where} "
                              "ORDER BY last_failure_at LIMIT %s", [*params, limit])
            return [r["dlq_id"] for r in await cur.fetchall()]

    async def mark_redriven(self, tenant: str, dlq_id: str) -> None:
        async with self._db.connection() as conn:
            await conn.execute(
                "UPDATE dead_letters SET status = 'REDRIVEN', redrive_count = redrive_count + 1, "
                "redriven_at = now() WHERE tenant_id = %s AND dlq_id = %s", [tenant, dlq_id])


def _render(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for column in ("first_failure_at", "last_failure_at", "redriven_at"):
        if out.get(column) is not None:
            out[column] = out[column].isoformat().replace("+00:00", "Z")
    if out.get("tenant_id") == UNATTRIBUTED:
        out["tenant_id"] = None
    out["origin"] = {"topic": out.pop("origin_topic"), "partition": out.pop("origin_partition"),
                     "offset": out.pop("origin_offset")}
    if "record_headers" in out:
        headers = out.pop("record_headers")
        key, value = out.pop("record_key"), out.pop("record_value")
        out["record"] = {
            "key": key.decode(errors="replace") if key is not None else None,
            "value_base64": base64.b64encode(value).decode() if value is not None else None,
            "headers": {k: base64.b64decode(v).decode(errors="replace") for k, v in headers},
        }
        out["_raw"] = (key, value, [(k, base64.b64decode(v)) for k, v in headers])
    return out


def count_dead_letters(rows: Sequence[DeadLetterRow]) -> None:
    """``esb_dead_letters_total`` by tenant, stage and reason for rows just indexed: every
    stage's dead letters pass through the index, so this one counter covers them all."""
    tally: Tally[tuple[str, ...]] = Tally(
        (p["tenant_id"], p["stage"][:64], p["reason"][:64]) for p in (r.to_params() for r in rows))
    flush_tally(DEAD_LETTERS, tally)
