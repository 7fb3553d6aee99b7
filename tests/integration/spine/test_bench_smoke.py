"""`esb bench` as an operator runs it: the CLI in a fresh process, on the production default
(no ESB_MODE), its own broker and worker. Tiny sizes: this checks that the benchmark works and
reports its baselines and ratios, not how fast anything is (benchmarks measure, tests don't)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_bench_publish_reports_its_baselines_and_ratios() -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ESB_") or k == "ESB_DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "esb.cli", "bench", "publish", "--events", "300",
         "--concurrency", "4", "--batch-size", "50"],
        capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["http_single"]["errors"] == 0 and result["http_batch"]["errors"] == 0
    bare = result["baseline_bare_http_endpoint"]
    assert bare["single"]["errors"] == 0 and bare["batch"]["errors"] == 0
    for ratio in ("ratio_single", "ratio_batch", "ratio_single_to_bare_http",
                  "ratio_batch_to_bare_http"):
        assert result[ratio] > 0, ratio
    assert result["worker_memory"]["peak_rss_mb"] > 0
