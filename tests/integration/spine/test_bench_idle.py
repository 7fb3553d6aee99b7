"""`esb bench idle` as an operator runs it: the CLI in a fresh process starts `esb up
--ephemeral` itself (its own broker, PostgreSQL and worker) and reports CPU per process, the
worker's Fetch rate and the first event's latency after the quiet window (ADR 0021). This checks
that the benchmark works and what it reports, not how fast anything is."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_bench_idle_reports_cpu_per_process_fetches_and_first_event_latency() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESB_")}
    done = subprocess.run([sys.executable, "-m", "esb.cli", "bench", "idle"],
                          capture_output=True, text=True, timeout=400, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    cpu = result["per_process_cpu_percent"]
    assert set(cpu) == {"broker", "worker", "postgres", "supervisor"}
    assert result["processes"]["broker"] == 1 and result["processes"]["worker"] == 1
    assert result["processes"]["postgres"] >= 1  # the embedded PostgreSQL was found
    assert cpu["worker"] > 0 and cpu["broker"] > 0
    assert result["idle_cpu_percent"] == pytest.approx(sum(cpu.values()), abs=0.05)
    assert result["worker_rss_mb"] > 0 and result["fetch_loops"] >= 8
    fetches = result["worker_fetch_requests_per_s"]
    assert 0 < fetches["empty"] < 10 * result["fetch_loops"]  # quiet consumers wait longer
    for phase in ("first_after_idle", "warm_median"):
        assert result[phase]["archive_ms"] > 0 and result[phase]["live_tail_ms"] > 0
    sparse = result["sparse"]  # events after quiet spells: median and worst
    assert result["sparse_events"] >= 3
    assert 0 < sparse["archive_ms"]["median"] <= sparse["archive_ms"]["max"]
