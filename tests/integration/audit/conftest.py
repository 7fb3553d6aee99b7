"""A throwaway, migrated schema per test (tampering tests destroy their log), dropped after."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg import sql

from esb.db import Database


@pytest.fixture
async def audit_db(database_url: str) -> AsyncIterator[Database]:
    schema = f"esb_audit_{uuid.uuid4().hex[:12]}"
    database = Database(database_url, schema=schema, min_size=1, max_size=8, connect_timeout=3)
    await database.open()
    try:
        yield database
    finally:
        await database.close()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
