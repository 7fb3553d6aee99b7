"""PostgreSQL fixtures for the read side: one throwaway schema per session, dropped at the end.

Uses ESB_TEST_DATABASE_URL or this machine's PostgreSQL; when it is unreachable every test here
is skipped with the reason (connect timeout 2 s, never a hang). Tests isolate from each other
by tenant id, so they share the migrated schema.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from psycopg import sql

from esb.db import Database

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _reachable(url: str) -> str | None:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {url} unreachable ({exc.__class__.__name__}: {exc})".strip()
    return None


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = os.environ.get("ESB_TEST_DATABASE_URL", DEFAULT_URL)
    problem = _reachable(url)
    if problem:
        pytest.skip(f"{problem}; set ESB_TEST_DATABASE_URL to run read-side tests")
    return url


def _drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(scope="session")
def schema_factory(pg_url: str) -> Iterator[object]:
    """Makes unique schema names and drops every one of them at the end of the session."""
    made: list[str] = []

    def make(prefix: str = "esb_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        made.append(name)
        return name

    yield make
    for name in made:
        _drop_schema(pg_url, name)


@pytest.fixture(scope="session")
async def db(pg_url: str, schema_factory) -> AsyncIterator[Database]:
    database = Database(pg_url, schema=schema_factory(), min_size=1, max_size=4,
                        connect_timeout=3)
    await database.open()
    yield database
    await database.close()


@pytest.fixture
def tenant() -> str:
    """A fresh tenant per test, so tests never see each other's rows."""
    return f"tenant_{uuid.uuid4().hex[:10]}"
