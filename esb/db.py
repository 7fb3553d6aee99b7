"""PostgreSQL access for the read side: one connection pool, migrations, error translation.

Every pooled connection has ``search_path`` set to the bus's schema, so SQL (and migration
files) name tables unqualified. Rows come back as dicts (``psycopg.rows.dict_row``).

Migrations are the files ``esb/migrations/NNNN_name.sql``, applied in name order, each once,
recorded in ``schema_migrations``. ``open()`` takes a PostgreSQL advisory lock (keyed by the
schema) while migrating, so replicas that start together apply each file exactly once.
Files must be transactional (each runs in its own transaction: no ``CREATE INDEX
CONCURRENTLY``) and must not change once applied (a changed checksum is logged).
Number ranges: 0001-0099 read side; other areas take their own hundreds (0100 dead letters...).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from esb.errors import ConfigurationError, StorageUnavailable

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[A-Za-z0-9_]+\.sql$")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# Errors that mean "the database is not there right now" (retriable), not "your SQL is wrong".
_UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout, PoolClosed)


@contextmanager
def storage_errors(what: str = "database") -> Iterator[None]:
    """Turn psycopg connection/availability errors into :class:`StorageUnavailable`."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StorageUnavailable(f"{what} unavailable: {exc}".strip()) from exc


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def sql_text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every ``NNNN_name.sql`` in ``directory``, in name order; duplicate numbers are an error."""
    migrations: list[Migration] = []
    seen: dict[str, str] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise ConfigurationError(f"migration file name {path.name!r} is not NNNN_name.sql")
        number = match.group(1)
        if number in seen:
            raise ConfigurationError(
                f"migrations {seen[number]!r} and {path.name!r} share number {number}")
        seen[number] = path.name
        migrations.append(Migration(version=path.stem, name=path.name, path=path))
    return migrations


class Database:
    """An async connection pool on one schema, migrated on :meth:`open`."""

    def __init__(self, url: str, *, schema: str = "esb", min_size: int = 1, max_size: int = 10,
                 connect_timeout: float = 5.0, migrations_dir: Path = MIGRATIONS_DIR) -> None:
        if not _SCHEMA_NAME.match(schema):
            raise ConfigurationError(
                f"database schema {schema!r} must match {_SCHEMA_NAME.pattern}")
        self.url = url
        self.schema = schema
        self.connect_timeout = connect_timeout
        self.migrations_dir = migrations_dir
        self.min_size = min_size
        self.max_size = max_size
        self._pool: AsyncConnectionPool | None = None

    def _new_pool(self) -> AsyncConnectionPool:
        return AsyncConnectionPool(
            self.url,
            min_size=self.min_size,
            max_size=self.max_size,
            open=False,
            timeout=self.connect_timeout,
            # libpq takes whole seconds, at least 2
            kwargs={"connect_timeout": max(2, int(self.connect_timeout)), "row_factory": dict_row},
            configure=self._configure,
            check=AsyncConnectionPool.check_connection,
            name=f"esb-{self.schema}",
        )

    @property
    def pool(self) -> AsyncConnectionPool:
        if self._pool is None:
            raise StorageUnavailable("database is not open (call Database.open() first)")
        return self._pool

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.set_autocommit(True)
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        await conn.set_autocommit(False)

    async def open(self) -> None:
        """Open the pool (failing fast if PostgreSQL is unreachable) and apply migrations."""
        if self._pool is not None:
            return
        self._pool = self._new_pool()
        try:
            with storage_errors("PostgreSQL"):
                await self._pool.open(wait=True, timeout=self.connect_timeout)
            await self.migrate()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection; the block's work is committed on success, rolled back on error."""
        with storage_errors("PostgreSQL"):
            async with self.pool.connection() as conn:
                yield conn

    async def migrate(self) -> list[str]:
        """Apply pending migrations under an advisory lock; returns the versions applied now."""
        migrations = discover_migrations(self.migrations_dir)
        applied_now: list[str] = []
        with storage_errors("PostgreSQL"):
            async with self.pool.connection() as conn:
                await conn.set_autocommit(True)
                lock_key = f"esb.migrations.{self.schema}"
                await conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (lock_key,))
                try:
                    await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                        sql.Identifier(self.schema)))
                    await conn.execute(
                        "CREATE TABLE IF NOT EXISTS schema_migrations ("
                        " version text PRIMARY KEY,"
                        " checksum text NOT NULL,"
                        " applied_at timestamptz NOT NULL DEFAULT now())")
                    cur = await conn.execute("SELECT version, checksum FROM schema_migrations")
                    done = {row["version"]: row["checksum"] for row in await cur.fetchall()}
                    for migration in migrations:
                        if migration.version in done:
                            if done[migration.version] != migration.checksum:
                                log.warning("migration %s changed after it was applied",
                                            migration.name)
                            continue
                        async with conn.transaction():
                            await conn.execute(migration.sql_text)  # type: ignore[arg-type]
                            await conn.execute(
                                "INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)",
                                (migration.version, migration.checksum))
                        applied_now.append(migration.version)
                        log.info("applied migration %s to schema %s", migration.name, self.schema)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))",
                                       (lock_key,))
                    await conn.set_autocommit(False)
        return applied_now


EMBEDDED_POSTGRES_START_TIMEOUT_S = 90.0


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or join) a pip-installed PostgreSQL on ``data_dir``; returns its connection URL.

    Several processes may share one ``data_dir``: pgserver serialises start-up with a file lock,
    the first starts the server, the others reuse it, and the last process to exit stops it.
    The server listens only on a Unix socket inside the data directory.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers); harmless
        warnings.simplefilter("ignore")
        import pgserver

    # pgserver races when two processes initialise the same directory at once (the second reads
    # the first's initdb pid file), and it refuses a server that is still shutting down for the
    # previous `esb up` (its status is "stopping", not "ready"); both pass, so retry for a while.
    deadline = time.monotonic() + EMBEDDED_POSTGRES_START_TIMEOUT_S
    attempt = 0
    while True:
        attempt += 1
        try:
            server = pgserver.get_server(data_dir, cleanup_mode="stop")
            return str(server.get_uri())
        except Exception as exc:
            if time.monotonic() >= deadline:
                raise StorageUnavailable(
                    f"embedded PostgreSQL did not start in {data_dir} after {attempt} attempts:"
                    f" {exc!r}") from exc
            log.info("embedded PostgreSQL in %s not ready yet (%r); retrying", data_dir, exc)
            time.sleep(min(0.5 * attempt, 3.0))


def stop_embedded_postgres(data_dir: Path, timeout: float = 15.0) -> bool:
    """Fast-stop the pip-installed PostgreSQL on ``data_dir`` if it runs (SIGINT to the
    postmaster named in ``postmaster.pid``: pg_ctl refuses to run as root, signals do not).
    Used by ``esb up``'s watchdog when ``esb up`` died without its own clean-up."""
    import os
    import signal

    import psutil

    data_dir = Path(data_dir).expanduser().resolve()
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        # a stale pid file may name an unrelated process by now: only a postmaster on this dir
        if str(data_dir) not in " ".join(psutil.Process(pid).cmdline()):
            return False
        os.kill(pid, signal.SIGINT)
    except (OSError, ValueError, psutil.Error):
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return True
        time.sleep(0.1)
    log.warning("embedded PostgreSQL (pid %s) still running %ss after a fast stop", pid, timeout)
    return False
