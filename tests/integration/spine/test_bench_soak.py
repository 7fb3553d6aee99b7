"""`esb bench soak` as an operator runs it, tiny: the CLI in a fresh process with its own broker
and worker, a fixed offered rate for a few seconds. This checks the report's shape and that the
three jobs processed every event produced, not whether RSS is flat (benchmarks measure, tests
don't)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_bench_soak_reports_rss_drift_and_every_job_keeps_up() -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ESB_") or k == "ESB_DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "esb.cli", "bench", "soak", "--seconds", "20", "--rate", "200"],
        capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["kind"] == "soak" and result["peak"] is None  # --rate given: no peak burst
    assert result["rate_offered"] == 200
    assert result["produced"] > 0
    assert set(result["processed_after_drain"]) == {"filter", "aggregate", "sequence_pattern"}
    assert all(n == result["produced"] for n in result["processed_after_drain"].values())
    assert set(result["lag_at_end"]) == set(result["processed_after_drain"])
    worker = result["worker"]
    for field in ("warm_rss_mb", "end_rss_mb", "peak_rss_mb"):
        assert worker[field] > 0, field
    assert worker["peak_rss_mb"] >= max(worker["warm_rss_mb"], worker["end_rss_mb"])
    drift = (worker["end_rss_mb"] - worker["warm_rss_mb"]) / worker["warm_rss_mb"] * 100
    assert worker["drift_percent"] == pytest.approx(drift, abs=0.2)
    assert worker["flat"] == (abs(worker["drift_percent"]) <= 5)
    assert worker["cpu_percent_of_one_core"] > 0
    assert result["series"] and result["series"][-1]["produced"] <= result["produced"]
