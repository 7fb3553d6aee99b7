"""The event archive: idempotent batched inserts and tenant-scoped queries.

Every query filters by tenant first and passes every value as a parameter; only fixed
column names are composed into SQL. Paging is keyset (no OFFSET): the cursor holds the sort
key of the last row, so pages stay stable while new events arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, Self

from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from esb.db import Database
from esb.errors import InvalidRequest, NotFound
from esb.readside.models import ARCHIVE_COLUMNS, ArchivedEvent
from esb.readside.paging import decode_cursor, encode_cursor, glob_to_like

MAX_PAGE = 1000
_TIME_CURSOR = "t"
_SEQ_CURSOR = "s"

_COLUMNS = sql.SQL(", ").join(sql.Identifier(c) for c in (*ARCHIVE_COLUMNS, "archived_at"))
_INSERT = sql.SQL(
    "INSERT INTO events ({columns}) VALUES ({values}) ON CONFLICT (tenant_id, event_id) DO NOTHING"
).format(
    columns=sql.SQL(", ").join(sql.Identifier(c) for c in ARCHIVE_COLUMNS),
    values=sql.SQL(", ").join(sql.Placeholder() for _ in ARCHIVE_COLUMNS),
)


class EventQuery(BaseModel):
    """Filters of ``POST /api/v1/events/query``; all given filters must hold (AND)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_types: list[str] = Field(default_factory=list, max_length=50,
                                   description="globs (* and ?), any may match")
    event_type: str | None = Field(None, description="one more glob, for convenience")
    aggregate_id: str | None = None
    aggregate_type: str | None = None
    stream_id: str | None = None
    stream_name: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    user_id: str | None = None
    source: str | None = None
    start_time: AwareDatetime | None = Field(None, description="inclusive")
    end_time: AwareDatetime | None = Field(None, description="exclusive")
    payload_contains: dict[str, Any] | None = Field(None, description="jsonb @> containment")
    order: Literal["asc", "desc"] = "asc"
    limit: int = Field(100, ge=1, le=MAX_PAGE)
    cursor: str | None = None

    @model_validator(mode="after")
    def _time_range_ordered(self) -> Self:
        if self.start_time and self.end_time and self.start_time > self.end_time:
            raise ValueError("start_time must not be after end_time")
        return self

    def patterns(self) -> list[str]:
        return [*self.event_types, *([self.event_type] if self.event_type else [])]


class EventPage(BaseModel):
    events: list[ArchivedEvent]
    next_cursor: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"events": [e.to_seed_dict() for e in self.events], "next_cursor": self.next_cursor,
                "count": len(self.events)}


def _event_params(event: ArchivedEvent) -> list[Any]:
    values = event.model_dump(include=set(ARCHIVE_COLUMNS))
    values["payload"] = None if event.payload is None else Jsonb(event.payload)
    values["metadata"] = Jsonb(event.metadata)
    return [values[c] for c in ARCHIVE_COLUMNS]


def build_filters(tenant_id: str, query: EventQuery) -> tuple[list[sql.Composable], list[Any]]:
    """WHERE conditions and their parameters for ``query`` (tenant always first)."""
    conditions: list[sql.Composable] = [sql.SQL("tenant_id = %s")]
    params: list[Any] = [tenant_id]
    patterns = query.patterns()
    if patterns:
        alternatives: list[sql.Composable] = []
        for pattern in patterns:
            like, wild = glob_to_like(pattern)
            if wild:
                alternatives.append(sql.SQL("event_type LIKE %s ESCAPE '\\'"))
                params.append(like)
            else:
                alternatives.append(sql.SQL("event_type = %s"))
                params.append(pattern)
        conditions.append(sql.SQL("({})").format(sql.SQL(" OR ").join(alternatives)))
    for column in ("aggregate_id", "aggregate_type", "stream_id", "stream_name",
                   "correlation_id", "causation_id", "user_id", "source"):
        value = getattr(query, column)
        if value is not None:
            conditions.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    if query.start_time is not None:
        conditions.append(sql.SQL('"time" >= %s'))
        params.append(query.start_time)
    if query.end_time is not None:
        conditions.append(sql.SQL('"time" < %s'))
        params.append(query.end_time)
    if query.payload_contains is not None:
        conditions.append(sql.SQL("payload @> %s"))
        params.append(Jsonb(query.payload_contains))
    return conditions, params


def _typed_cursor(convert: Any, key: Any, event_id: Any) -> list[Any]:
    try:
        if not isinstance(event_id, str) or isinstance(key, bool):
            raise TypeError("bad cursor values")
        return [convert(key), event_id]
    except (TypeError, ValueError) as exc:
        raise InvalidRequest("invalid cursor", parameter="cursor") from exc


class EventArchive:
    """Reads and writes the ``events`` table of a :class:`~esb.db.Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert_many(self, events: Sequence[ArchivedEvent]) -> int:
        """Archive ``events``; ones already archived (same tenant and id) are skipped.

        Returns how many rows were new. One pipelined round trip per batch.
        """
        if not events:
            return 0
        async with self.db.connection() as conn, conn.cursor() as cur:
            await cur.executemany(_INSERT, [_event_params(e) for e in events])
            return max(cur.rowcount, 0)

    async def get(self, tenant_id: str, event_id: str) -> ArchivedEvent:
        """One event of this tenant; another tenant's id is simply :class:`NotFound`."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                sql.SQL("SELECT {} FROM events WHERE tenant_id = %s AND event_id = %s").format(
                    _COLUMNS), (tenant_id, event_id))
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"event {event_id!r} not found", event_id=event_id)
        return ArchivedEvent.model_validate(row)

    async def query(self, tenant_id: str, query: EventQuery) -> EventPage:
        """Events matching ``query``, ordered by (time, event_id), one page at a time."""
        conditions, params = build_filters(tenant_id, query)
        descending = query.order == "desc"
        if query.cursor:
            last_time, last_id = decode_cursor(query.cursor, _TIME_CURSOR + query.order, 2)
            conditions.append(sql.SQL('("time", event_id) {} (%s, %s)').format(
                sql.SQL("<" if descending else ">")))
            params.extend(_typed_cursor(datetime.fromisoformat, last_time, last_id))
        direction = sql.SQL("DESC" if descending else "ASC")
        statement = sql.SQL(
            'SELECT {columns} FROM events WHERE {where} '
            'ORDER BY "time" {dir}, event_id {dir} LIMIT %s'
        ).format(columns=_COLUMNS, where=sql.SQL(" AND ").join(conditions), dir=direction)
        rows = await self._fetch(statement, [*params, query.limit + 1])
        events = [ArchivedEvent.model_validate(r) for r in rows[: query.limit]]
        next_cursor = None
        if len(rows) > query.limit:
            last = events[-1]
            next_cursor = encode_cursor(_TIME_CURSOR + query.order,
                                        [last.time.isoformat(), last.event_id])
        return EventPage(events=events, next_cursor=next_cursor)

    async def count(self, tenant_id: str, query: EventQuery) -> int:
        """How many events match ``query``'s filters (its cursor, order and limit aside): the
        total of a rebuild job's progress."""
        conditions, params = build_filters(tenant_id, query)
        statement = sql.SQL("SELECT count(*) AS n FROM events WHERE {}").format(
            sql.SQL(" AND ").join(conditions))
        rows = await self._fetch(statement, params)
        return int(rows[0]["n"]) if rows else 0

    async def stream_events(self, tenant_id: str, stream_id: str, *, limit: int = 100,
                            cursor: str | None = None, order: Literal["asc", "desc"] = "asc",
                            start_time: datetime | None = None,
                            end_time: datetime | None = None) -> EventPage:
        """A stream's events in time order (``GET /streams/{id}/events``)."""
        return await self.query(tenant_id, EventQuery(
            stream_id=stream_id, limit=limit, cursor=cursor, order=order,
            start_time=start_time, end_time=end_time))

    async def aggregate_events(self, tenant_id: str, aggregate_id: str, *,
                               aggregate_type: str | None = None, after_version: int = 0,
                               to_version: int | None = None, limit: int = 100,
                               cursor: str | None = None) -> EventPage:
        """An event-sourced aggregate's events (those with a sequence number) in version order.

        ``after_version`` skips what a snapshot already covers; ``to_version`` is inclusive.
        """
        limit = max(1, min(limit, MAX_PAGE))
        conditions: list[sql.Composable] = [
            sql.SQL("tenant_id = %s AND aggregate_id = %s AND sequence_number > %s")]
        params: list[Any] = [tenant_id, aggregate_id, after_version]
        if aggregate_type is not None:
            conditions.append(sql.SQL("aggregate_type = %s"))
            params.append(aggregate_type)
        if to_version is not None:
            conditions.append(sql.SQL("sequence_number <= %s"))
            params.append(to_version)
        if cursor:
            last_seq, last_id = decode_cursor(cursor, _SEQ_CURSOR, 2)
            conditions.append(sql.SQL("(sequence_number, event_id) > (%s, %s)"))
            params.extend(_typed_cursor(int, last_seq, last_id))
        statement = sql.SQL(
            "SELECT {columns} FROM events WHERE {where} "
            "ORDER BY sequence_number, event_id LIMIT %s"
        ).format(columns=_COLUMNS, where=sql.SQL(" AND ").join(conditions))
        rows = await self._fetch(statement, [*params, limit + 1])
        events = [ArchivedEvent.model_validate(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = encode_cursor(_SEQ_CURSOR, [events[-1].sequence_number,
                                                      events[-1].event_id])
        return EventPage(events=events, next_cursor=next_cursor)

    async def _fetch(self, statement: sql.Composable, params: list[Any]) -> list[dict[str, Any]]:
        async with self.db.connection() as conn:
            cur = await conn.execute(statement, params)
            return await cur.fetchall()
