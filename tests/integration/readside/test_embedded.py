"""pgserver-backed embedded PostgreSQL, shared by two processes on one data directory.

Runs in child processes: pgserver stops the server at interpreter exit of the last user, so
starting it inside the test runner would outlive the test.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CHILD = textwrap.dedent("""
    import asyncio, sys, time
    from pathlib import Path
    import psycopg
    from esb.db import Database, start_embedded_postgres

    url = start_embedded_postgres(Path(sys.argv[1]))
    print("URL", url, flush=True)

    async def main():
        db = Database(url, schema="esb", connect_timeout=5)
        await db.open()   # both processes migrate the same schema concurrently
        async with db.connection() as conn:
            cur = await conn.execute("SELECT count(*) AS n FROM schema_migrations")
            print("MIGRATIONS", (await cur.fetchone())["n"], flush=True)
        await db.close()

    asyncio.run(main())
    time.sleep(float(sys.argv[2]))  # keep the server in use while the other process exits
    with psycopg.connect(url) as conn:
        print("ALIVE", conn.execute("SELECT 1").fetchone()[0], flush=True)
""")


def _spawn(data_dir: Path, linger: float, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(data_dir), str(linger)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)


def test_two_processes_share_one_embedded_server(tmp_path: Path):
    pytest.importorskip("pgserver")
    data_dir = tmp_path / "pg"
    repo = Path(__file__).resolve().parents[3]
    long_lived = _spawn(data_dir, 3.0, repo)
    short_lived = _spawn(data_dir, 0.0, repo)
    try:
        out_short, err_short = short_lived.communicate(timeout=90)
        out_long, err_long = long_lived.communicate(timeout=90)
    finally:
        for proc in (long_lived, short_lived):
            if proc.poll() is None:
                proc.kill()
    assert short_lived.returncode == 0, err_short
    assert long_lived.returncode == 0, err_long
    urls = {line.split(" ", 1)[1] for line in (out_short + out_long).splitlines()
            if line.startswith("URL")}
    assert len(urls) == 1  # the second process joined the first one's server
    migrations = [line for line in (out_short + out_long).splitlines()
                  if line.startswith("MIGRATIONS")]
    assert len(migrations) == 2 and len(set(migrations)) == 1
    # the long-lived process still had its server after the short-lived one exited
    assert "ALIVE 1" in out_long
    assert (data_dir / "PG_VERSION").exists()
