"""``esb backup DIR`` / ``esb restore DIR`` for the embedded durable stack (ADR 0014).

A backup is the broker's own files (every topic, record, consumer-group offset, exactly as the
broker keeps them under ``ESB_DATA_DIR/broker``) plus a ``pg_dump`` of the bus's schema. Copying
the broker's files, rather than re-producing records, keeps offsets identical, so consumers and
Faust changelogs resume exactly where they were; Tansu cannot list consumer groups, so a
topic-level copy could not carry their offsets. RocksDB tables are not copied: the workers
rebuild them from the restored changelogs. Taken while ``esb up`` is stopped on that data
directory (the directory lock says so), so the copy is consistent.

An external Kafka (``ESB_BROKER``) is backed up with its own tools; this refuses it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from esb.errors import ConfigurationError

FORMAT = 1
LOCK_NAME = ".esb-up.lock"


@contextlib.contextmanager
def data_dir_lock(data_dir: Path, what: str) -> Iterator[None]:
    """Hold the data directory exclusively (``esb up``, backup, restore): two brokers on the
    same files, or a copy taken while one writes, would corrupt or tear the data. The kernel
    drops the lock when its holder dies, even by SIGKILL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = (data_dir / LOCK_NAME).open("a")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"{what}: {data_dir} is in use by a running `esb up` "
                             f"(or a backup/restore); stop it first") from None
        yield
    finally:
        fd.close()


def _pg_bin(name: str) -> str:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH
    return str(POSTGRES_BIN_PATH / name)


def _database_url(data_dir: Path, configured: str | None) -> str:
    if configured:
        return configured
    from esb.db import start_embedded_postgres

    return start_embedded_postgres(data_dir / "postgres")


def _run(args: list[str]) -> None:
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ConfigurationError(f"{Path(args[0]).name} failed: {result.stderr.strip()[-800:]}")


def backup(data_dir: Path, dest: Path, *, database_url: str | None, schema: str
           ) -> dict[str, Any]:
    """Copy the durable broker's files and dump the schema into ``dest`` (new or empty)."""
    broker = data_dir / "broker"
    if not broker.is_dir():
        raise ConfigurationError(f"no durable broker data in {broker} (was `esb up` ever run "
                                 f"there without --ephemeral?)")
    if dest.exists() and any(dest.iterdir()):
        raise ConfigurationError(f"backup directory {dest} is not empty")
    with data_dir_lock(data_dir, "esb backup"):
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copytree(broker, dest / "broker")
        url = _database_url(data_dir, database_url)
        _run([_pg_bin("pg_dump"), "--dbname", url, "--schema", schema, "--no-owner",
              "--no-privileges", "--file", str(dest / "database.sql")])
    records = sum(1 for _ in (dest / "broker").rglob("*.batch"))
    manifest = {"format": FORMAT, "schema": schema, "created_at": time.time(),
                "broker": "broker", "database": "database.sql", "record_batches": records}
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def restore(src: Path, data_dir: Path, *, database_url: str | None, schema: str
            ) -> dict[str, Any]:
    """Bring a backup into a data directory with no broker data and a database without the
    bus's schema; ``esb up`` there then serves the same streams, events, aggregates, offsets."""
    manifest = json.loads((src / "manifest.json").read_text())
    if manifest.get("format") != FORMAT:
        raise ConfigurationError(f"unknown backup format {manifest.get('format')!r}")
    if manifest["schema"] != schema:
        raise ConfigurationError(f"the backup holds schema {manifest['schema']!r}; set "
                                 f"ESB_DATABASE_SCHEMA={manifest['schema']} to restore it")
    broker = data_dir / "broker"
    if broker.exists() and any(broker.iterdir()):
        raise ConfigurationError(f"{broker} already holds broker data; restore into a fresh "
                                 f"ESB_DATA_DIR")
    with data_dir_lock(data_dir, "esb restore"):
        url = _database_url(data_dir, database_url)
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM information_schema.schemata "
                                  "WHERE schema_name = %s", (schema,)).fetchone()
        if exists:
            raise ConfigurationError(f"schema {schema!r} already exists in the target "
                                     f"database; restore into an empty one")
        _run([_pg_bin("psql"), "--dbname", url, "-v", "ON_ERROR_STOP=1", "--quiet",
              "--file", str(src / manifest["database"])])
        shutil.copytree(src / manifest["broker"], broker, dirs_exist_ok=True)
    return manifest
