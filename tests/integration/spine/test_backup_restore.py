"""`esb backup DIR` then `esb restore DIR` into a fresh data directory: the same streams, events
and aggregates come back (real `esb up` processes, embedded PostgreSQL on both sides)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.integration.spine.test_restart_durable import (
    APPEND,
    EsbUp,
    _append,
    _created,
    _everything_is_back,
)
from tests.support import Api, eventually, unique

pytestmark = pytest.mark.integration

FAST_GROUPS = {"ESB_GROUP_REBALANCE_TIMEOUT_MS": "2000", "ESB_GROUP_SESSION_TIMEOUT_MS": "6000",
               "ESB_GROUP_HEARTBEAT_INTERVAL_MS": "1000",
               "ESB_DEFAULT_PARTITIONS": "3"}


def _esb(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ESB_BROKER", "ESB_DATABASE_URL", "ESB_DATABASE_SCHEMA")}
    return subprocess.run([sys.executable, "-m", "esb.cli", *args], capture_output=True,
                          text=True, timeout=120, env={**env, "ESB_DATA_DIR": str(data_dir)})


async def test_backup_then_restore_into_a_fresh_data_dir(tmp_path: Path) -> None:
    for name in ("ESB_BROKER", "ESB_DATABASE_URL", "ESB_DATABASE_SCHEMA"):
        os.environ.pop(name, None)
    original = EsbUp(tmp_path / "a" / "data", {"ESB_DATA_DIR": str(tmp_path / "a" / "data"),
                                               **FAST_GROUPS})
    stream = unique("s")
    try:
        banner = original.start()
        assert banner["database"] == "embedded PostgreSQL"
        async with aiohttp.ClientSession() as http:
            api = Api(http, f"http://127.0.0.1:{original.port}", banner["dev_token"])
            assert (await api.post("/api/v1/streams", {"stream_name": stream,
                                                       "source_capability": "shop"}))[0] == 201
            status, body = await api.post("/api/v1/events", {
                "event_type": "order.placed", "source_capability": "shop",
                "aggregate_id": "order_1", "aggregate_type": "Order", "payload": {"n": 0}})
            assert status == 201, body
            event_id = body["event_id"]
            for n, expected in ((1, "no_stream"), (2, 1)):
                await eventually(lambda n=n, expected=expected, eid=f"evt_order1_{n}":
                                 _created(api, _append(n, expected, eid)), timeout=60)
            await _everything_is_back(api, stream, event_id)
            refused = _esb("backup", str(tmp_path / "early"), data_dir=original.data_dir)
            assert refused.returncode != 0 and "in use by a running `esb up`" in refused.stderr
        original.interrupt()
    finally:
        original.stop_quietly()

    made = _esb("backup", str(tmp_path / "backup"), data_dir=original.data_dir)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["record_batches"] > 0
    fresh = tmp_path / "b" / "data"
    done = _esb("restore", str(tmp_path / "backup"), data_dir=fresh)
    assert done.returncode == 0, done.stderr
    again = _esb("restore", str(tmp_path / "backup"), data_dir=fresh)
    assert again.returncode != 0 and "already holds broker data" in again.stderr

    restored = EsbUp(fresh, {"ESB_DATA_DIR": str(fresh), **FAST_GROUPS})
    try:
        banner = restored.start()
        async with aiohttp.ClientSession() as http:
            api = Api(http, f"http://127.0.0.1:{restored.port}", banner["dev_token"])
            await _everything_is_back(api, stream, event_id)
            status, body = await api.post(APPEND, _append(3, 2, "evt_order1_3"))
            assert status == 201 and body["version"] == 3, body  # it goes on from there
        restored.interrupt()
    finally:
        restored.stop_quietly()
