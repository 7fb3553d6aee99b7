"""The Grafana dashboard and the Prometheus alert rules use only metrics the worker registers,
and the Helm chart ships the same files as docs/."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "docs" / "grafana" / "esb-dashboard.json"
ALERTS = ROOT / "docs" / "prometheus" / "esb-alerts.yml"
NAME = re.compile(r"\b((?:esb|process)_[a-z0-9_]+)\b")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count",
                                                             "_created"),
            "gauge": ("",), "summary": ("_sum", "_count", "_created"), "info": ("_info",)}

# Import the app as a worker does (every feature installed), then list the registry's names.
_REGISTERED = r"""
import json
import esb.app
from esb.metrics import REGISTRY
SUFFIXES = %r
names = set()
for family in REGISTRY.collect():
    names.add(family.name)
    names.update(family.name + s for s in SUFFIXES.get(family.type, ("",)))
    names.update(sample.name for sample in family.samples)
print(json.dumps(sorted(names)))
"""


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    env = {**os.environ, "ESB_MODE": "development",
           "ESB_DATA_DIR": str(tmp_path_factory.mktemp("data"))}
    out = subprocess.run([sys.executable, "-c", _REGISTERED % (SUFFIXES,)], env=env, cwd=ROOT,
                         check=True, capture_output=True, text=True, timeout=120).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def _exprs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for k, v in node.items() if k != "expr" for e in _exprs(v)]
    if isinstance(node, list):
        return [e for item in node for e in _exprs(item)]
    return []


def used(exprs: list[str]) -> set[str]:
    return {m for e in exprs for m in NAME.findall(e)}


def test_dashboard_uses_only_registered_metrics(registered: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = _exprs(dashboard["panels"])
    assert len(exprs) >= 20 and dashboard["uid"] == "esb-overview"
    names = used(exprs)
    assert {"esb_consumer_lag_seconds", "esb_dead_letters_total", "process_cpu_seconds_total",
            "esb_delivery_attempts_total", "esb_http_requests_total"} <= names
    assert not names - registered, f"dashboard uses unknown metrics: {names - registered}"


def test_alert_rules_cover_lag_dead_letters_and_delivery(registered: set[str]) -> None:
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    assert all({"alert", "expr", "for"} <= set(r) for r in rules)
    names = used([r["expr"] for r in rules])
    assert {"esb_consumer_lag_seconds", "esb_dead_letters_total",
            "esb_delivery_attempts_total"} <= names
    assert not names - registered, f"alerts use unknown metrics: {names - registered}"


def test_a_misspelt_metric_would_be_caught(registered: set[str]) -> None:
    assert used(['rate(esb_dead_letter_total[5m])']) - registered == {"esb_dead_letter_total"}


@pytest.mark.parametrize(("doc", "chart"), [
    (DASHBOARD, ROOT / "helm" / "esb" / "dashboards" / "esb-dashboard.json"),
    (ALERTS, ROOT / "helm" / "esb" / "alerts" / "esb-alerts.yml"),
])
def test_helm_chart_ships_the_same_files(doc: Path, chart: Path) -> None:
    assert chart.read_bytes() == doc.read_bytes()


def test_every_registered_esb_metric_is_documented(registered: set[str]) -> None:
    documented = set(re.findall(r"`((?:esb|process)_[a-z0-9_]+)`",
                                (ROOT / "docs" / "metrics.md").read_text()))
    families = {n for n in registered if n.startswith("esb_")
                and not n.endswith(("_created", "_bucket", "_sum", "_count"))}
    missing = {n for n in families if n not in documented and n + "_total" not in documented}
    assert not missing, f"undocumented metrics: {sorted(missing)}"
