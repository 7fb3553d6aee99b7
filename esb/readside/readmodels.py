"""User-defined read models (CQRS projections) kept as JSON documents in PostgreSQL.

A definition says which events feed the model, how to find a document's key, what each event
type does (upsert or delete) and which fields to copy. Exact semantics of :func:`project`:

* an event feeds the model if its type matches one of ``event_types`` (globs: ``*``, ``?``,
  everything else literal, as in the archive's SQL ``LIKE`` that rebuilds read; matched in linear
  time by :mod:`esb.globs`);
* the key is the value at ``key_field`` (a dotted path into the event's public JSON, e.g.
  ``aggregate_id`` or ``payload.user.id``); an event without a scalar key is skipped;
* the operation is the first entry of ``operations`` whose pattern matches the type (exact
  names are tried before globs); unmatched types upsert;
* upsert: the document is ``{target: value at source path}`` for each ``fields`` entry whose
  source path exists (missing paths leave that field as it was); with no ``fields`` the event's
  payload (an object) is the document. It is merged shallowly into the stored document
  (jsonb ``||``), so events of different types can each fill their part;
* delete: the key's document is removed (a later upsert creates it again).

Events must be applied in log order per key (the projection agent consumes partitions in
order); re-applying the same event gives the same document.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field

from esb.db import Database
from esb.errors import NotFound
from esb.globs import compile_globs, glob_matches
from esb.quotas.limits import QuotaBook
from esb.readside.models import ArchivedEvent
from esb.readside.paging import decode_cursor, encode_cursor

Operation = Literal["upsert", "delete"]
_MISSING = object()
_DOC_CURSOR = "d"


class ReadModelDefinition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")
    event_types: list[str] = Field(min_length=1)
    key_field: str = Field("aggregate_id", min_length=1)
    operations: dict[str, Operation] = Field(default_factory=dict)
    fields: dict[str, str] = Field(default_factory=dict, description="target -> source path")
    description: str | None = None

    def feeds_on(self, event_type: str) -> bool:
        return compile_globs(self.event_types, sets=False)(event_type)

    def operation_for(self, event_type: str) -> Operation:
        if event_type in self.operations:
            return self.operations[event_type]
        for pattern, operation in self.operations.items():
            if glob_matches(pattern, event_type, sets=False):
                return operation
        return "upsert"


@dataclass(frozen=True, slots=True)
class Projection:
    """What one event does to one read model."""

    operation: Operation
    key: str
    document: Mapping[str, Any]
    event_id: str


def resolve_path(source: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or ``_MISSING``."""
    value: Any = source
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def project(definition: ReadModelDefinition, event: ArchivedEvent) -> Projection | None:
    """The effect of ``event`` on ``definition``'s documents (None: no effect). Pure."""
    if not definition.feeds_on(event.event_type):
        return None
    view = event.to_seed_dict()
    key = resolve_path(view, definition.key_field)
    if key is _MISSING or key is None or isinstance(key, Mapping | list):
        return None
    key_text = str(key).lower() if isinstance(key, bool) else str(key)
    operation = definition.operation_for(event.event_type)
    if operation == "delete":
        return Projection("delete", key_text, {}, event.event_id)
    if definition.fields:
        document = {}
        for target, path in definition.fields.items():
            value = resolve_path(view, path)
            if value is not _MISSING:
                document[target] = value
    else:
        document = dict(event.payload) if isinstance(event.payload, Mapping) else {}
    return Projection("upsert", key_text, document, event.event_id)


class ReadModelDocument(BaseModel):
    key: str
    document: dict[str, Any]
    last_event_id: str | None = None
    updated_at: datetime


class DocumentPage(BaseModel):
    documents: list[ReadModelDocument]
    next_cursor: str | None = None


_UPSERT = """
INSERT INTO read_model_documents (tenant_id, model_name, doc_key, document, last_event_id)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (tenant_id, model_name, doc_key) DO UPDATE SET
    document = read_model_documents.document || EXCLUDED.document,
    last_event_id = EXCLUDED.last_event_id,
    updated_at = now()
"""
_DELETE = ("DELETE FROM read_model_documents "
           "WHERE tenant_id = %s AND model_name = %s AND doc_key = %s")


class ReadModelStore:
    """Definitions and documents of read models, per tenant."""

    def __init__(self, db: Database, *, quotas: QuotaBook | None = None) -> None:
        self.db = db
        self.quotas = quotas

    # --- definitions --------------------------------------------------------------------
    async def save_definition(self, tenant_id: str, definition: ReadModelDefinition) -> None:
        """Create or replace; existing documents stay until :meth:`rebuild`. A new name counts
        against the tenant's ``max_read_models`` (replacing one does not). Count and insert
        happen under a per-tenant transaction lock, so concurrent creates (on any replica)
        cannot both pass the count (ADR 0016)."""
        async with self.db.connection() as conn:
            if self.quotas is not None:
                await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                                   (f"esb.read_models.{tenant_id}",))
                cur = await conn.execute(
                    "SELECT count(*) AS n FROM read_model_definitions "
                    "WHERE tenant_id = %s AND name <> %s", (tenant_id, definition.name))
                row = await cur.fetchone()
                self.quotas.check_count(tenant_id, "max_read_models", int(row["n"]) if row else 0)
            await conn.execute(
                "INSERT INTO read_model_definitions (tenant_id, name, definition) "
                "VALUES (%s, %s, %s) ON CONFLICT (tenant_id, name) DO UPDATE SET "
                "definition = EXCLUDED.definition, updated_at = now()",
                (tenant_id, definition.name, Jsonb(definition.model_dump(mode="json"))))

    async def get_definition(self, tenant_id: str, name: str) -> ReadModelDefinition:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT definition FROM read_model_definitions WHERE tenant_id = %s AND name = %s",
                (tenant_id, name))
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"read model {name!r} not found", read_model=name)
        return ReadModelDefinition.model_validate(row["definition"])

    async def list_definitions(self, tenant_id: str) -> list[ReadModelDefinition]:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT definition FROM read_model_definitions WHERE tenant_id = %s ORDER BY name",
                (tenant_id,))
            rows = await cur.fetchall()
        return [ReadModelDefinition.model_validate(r["definition"]) for r in rows]

    async def delete_definition(self, tenant_id: str, name: str) -> None:
        """Remove the model and (by cascade) its documents."""
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM read_model_definitions WHERE tenant_id = %s AND name = %s",
                (tenant_id, name))
            if cur.rowcount == 0:
                raise NotFound(f"read model {name!r} not found", read_model=name)

    # --- applying events ----------------------------------------------------------------
    async def apply(self, events: Iterable[ArchivedEvent]) -> int:
        """Apply events (any tenants) to their tenants' read models; returns changes made."""
        by_tenant: dict[str, list[ReadModelDefinition]] = {}
        changes = 0
        async with self.db.connection() as conn, conn.pipeline():
            for event in events:
                if event.tenant_id not in by_tenant:
                    by_tenant[event.tenant_id] = await self._definitions(conn, event.tenant_id)
                for definition in by_tenant[event.tenant_id]:
                    changes += await _apply_one(conn, event.tenant_id, definition, event)
        return changes

    async def rebuild(self, tenant_id: str, name: str,
                      events: Iterable[ArchivedEvent] | AsyncIterable[ArchivedEvent]) -> int:
        """Empty the model's documents and re-apply ``events`` in one transaction.

        Readers see the old documents until the rebuild commits. Events of other tenants are
        ignored. Returns the number of changes applied.
        """
        definition = await self.get_definition(tenant_id, name)
        changes = 0
        async with self.db.connection() as conn:
            await conn.execute(  # lock the model against concurrent rebuilds
                "SELECT 1 FROM read_model_definitions WHERE tenant_id = %s AND name = %s "
                "FOR UPDATE", (tenant_id, name))
            await conn.execute(
                "DELETE FROM read_model_documents WHERE tenant_id = %s AND model_name = %s",
                (tenant_id, name))
            async with conn.pipeline():
                async for event in _aiter(events):
                    if event.tenant_id == tenant_id:
                        changes += await _apply_one(conn, tenant_id, definition, event)
        return changes

    async def replay(self, tenant_id: str, name: str,
                     events: Iterable[ArchivedEvent] | AsyncIterable[ArchivedEvent]) -> int:
        """Re-apply ``events`` to one model without emptying it first (e.g. one aggregate's
        or one stream's events); returns the number of changes applied."""
        definition = await self.get_definition(tenant_id, name)
        changes = 0
        async with self.db.connection() as conn, conn.pipeline():
            async for event in _aiter(events):
                if event.tenant_id == tenant_id:
                    changes += await _apply_one(conn, tenant_id, definition, event)
        return changes

    # --- queries ------------------------------------------------------------------------
    async def get_document(self, tenant_id: str, name: str, key: str) -> ReadModelDocument:
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT doc_key AS key, document, last_event_id, updated_at "
                "FROM read_model_documents "
                "WHERE tenant_id = %s AND model_name = %s AND doc_key = %s",
                (tenant_id, name, key))
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no document {key!r} in read model {name!r}", read_model=name,
                           key=key)
        return ReadModelDocument.model_validate(row)

    async def list_documents(self, tenant_id: str, name: str, *, limit: int = 100,
                             cursor: str | None = None) -> DocumentPage:
        """Documents in key order; :class:`NotFound` if the model does not exist."""
        await self.get_definition(tenant_id, name)
        limit = max(1, min(limit, 1000))
        after = str(decode_cursor(cursor, _DOC_CURSOR, 1)[0]) if cursor else None
        async with self.db.connection() as conn:
            cur = await conn.execute(
                "SELECT doc_key AS key, document, last_event_id, updated_at "
                "FROM read_model_documents "
                "WHERE tenant_id = %s AND model_name = %s AND (%s::text IS NULL OR doc_key > %s) "
                "ORDER BY doc_key LIMIT %s",
                (tenant_id, name, after, after, limit + 1))
            rows = await cur.fetchall()
        documents = [ReadModelDocument.model_validate(r) for r in rows[:limit]]
        next_cursor = (encode_cursor(_DOC_CURSOR, [documents[-1].key])
                       if len(rows) > limit else None)
        return DocumentPage(documents=documents, next_cursor=next_cursor)

    @staticmethod
    async def _definitions(conn: psycopg.AsyncConnection[Any],
                           tenant_id: str) -> list[ReadModelDefinition]:
        cur = await conn.execute(
            "SELECT definition FROM read_model_definitions WHERE tenant_id = %s ORDER BY name",
            (tenant_id,))
        return [ReadModelDefinition.model_validate(r["definition"]) for r in await cur.fetchall()]


async def _apply_one(conn: psycopg.AsyncConnection[Any], tenant_id: str,
                     definition: ReadModelDefinition, event: ArchivedEvent) -> int:
    projection = project(definition, event)
    if projection is None:
        return 0
    if projection.operation == "delete":
        await conn.execute(_DELETE, (tenant_id, definition.name, projection.key))
    else:
        await conn.execute(_UPSERT, (tenant_id, definition.name, projection.key,
                                     Jsonb(dict(projection.document)), projection.event_id))
    return 1


async def _aiter(events: Iterable[ArchivedEvent] | AsyncIterable[ArchivedEvent],
                 ) -> AsyncIterable[ArchivedEvent]:
    if isinstance(events, AsyncIterable):
        async for event in events:
            yield event
    else:
        for event in events:
            yield event
