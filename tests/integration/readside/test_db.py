from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import psycopg
import pytest

from esb.db import MIGRATIONS_DIR, Database, discover_migrations
from esb.errors import ConfigurationError, StorageUnavailable

pytestmark = pytest.mark.postgres


async def test_connections_use_the_schema_and_return_dicts(db: Database):
    async with db.connection() as conn:
        cur = await conn.execute("SELECT current_schema() AS s")
        assert (await cur.fetchone())["s"] == db.schema
        cur = await conn.execute("SELECT count(*) AS n FROM events")  # unqualified name works
        assert (await cur.fetchone())["n"] >= 0


async def test_every_migration_file_is_recorded_once(db: Database):
    async with db.connection() as conn:
        cur = await conn.execute("SELECT version FROM schema_migrations ORDER BY version")
        versions = [r["version"] for r in await cur.fetchall()]
    assert versions == [m.version for m in discover_migrations(MIGRATIONS_DIR)]
    assert "0001_readside" in versions


async def test_concurrent_open_applies_each_migration_once(pg_url, schema_factory, tmp_path):
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    shutil.copy(MIGRATIONS_DIR / "0001_readside.sql", migrations)
    # not idempotent on purpose: a second application would fail
    (migrations / "0002_counter.sql").write_text(
        "CREATE TABLE counter (n int);\nINSERT INTO counter VALUES (1);\n")
    schema = schema_factory("esb_mig")
    first = Database(pg_url, schema=schema, connect_timeout=3, migrations_dir=migrations)
    second = Database(pg_url, schema=schema, connect_timeout=3, migrations_dir=migrations)
    try:
        await asyncio.gather(first.open(), second.open())
        async with first.connection() as conn:
            cur = await conn.execute("SELECT version FROM schema_migrations ORDER BY version")
            assert [r["version"] for r in await cur.fetchall()] == ["0001_readside", "0002_counter"]
            cur = await conn.execute("SELECT count(*) AS n FROM counter")
            assert (await cur.fetchone())["n"] == 1

        # a file added later is applied on the next start, the old ones are not re-run
        (migrations / "0003_more.sql").write_text("INSERT INTO counter VALUES (3);")
        assert await second.migrate() == ["0003_more"]
        assert await first.migrate() == []
        async with first.connection() as conn:
            cur = await conn.execute("SELECT array_agg(n ORDER BY n) AS ns FROM counter")
            assert (await cur.fetchone())["ns"] == [1, 3]
    finally:
        await first.close()
        await second.close()


async def test_failed_migration_rolls_back_and_is_not_recorded(pg_url, schema_factory, tmp_path):
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE ok (n int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (n int);\nSELECT * FROM missing;")
    database = Database(pg_url, schema=schema_factory("esb_bad"), connect_timeout=3,
                        migrations_dir=tmp_path)
    with pytest.raises(psycopg.errors.UndefinedTable):
        await database.open()
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (n int);")
    await database.open()  # the pool can be reopened after a failed open
    try:
        async with database.connection() as conn:
            cur = await conn.execute("SELECT version FROM schema_migrations ORDER BY version")
            assert [r["version"] for r in await cur.fetchall()] == ["0001_ok", "0002_bad"]
    finally:
        await database.close()


def test_migration_names_are_checked(tmp_path: Path):
    (tmp_path / "0001_a.sql").write_text("")
    (tmp_path / "0001_b.sql").write_text("")
    with pytest.raises(ConfigurationError, match="share number"):
        discover_migrations(tmp_path)
    (tmp_path / "0001_b.sql").unlink()
    (tmp_path / "x.sql").write_text("")
    with pytest.raises(ConfigurationError, match="NNNN_name"):
        discover_migrations(tmp_path)


def test_schema_name_is_validated():
    with pytest.raises(ConfigurationError):
        Database("postgresql://x@127.0.0.1/x", schema='esb"; drop table x; --')


async def test_unreachable_database_is_storage_unavailable_quickly():
    database = Database("postgresql://postgres@127.0.0.1:1/test", schema="esb_none",
                        connect_timeout=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(StorageUnavailable) as info:
        await database.open()
    assert loop.time() - started < 10
    assert info.value.retriable and info.value.http_status == 503
    assert info.value.__cause__ is not None


async def test_lost_connection_is_storage_unavailable_and_pool_recovers(db: Database):
    with pytest.raises(StorageUnavailable):
        async with db.connection() as conn:
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    async with db.connection() as conn:
        cur = await conn.execute("SELECT 1 AS one")
        assert (await cur.fetchone())["one"] == 1
