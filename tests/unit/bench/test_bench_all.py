"""`esb bench all`: the goal table reads each kind's result where the kind writes it."""

from __future__ import annotations

import argparse

import pytest

from esb.bench import all as bench_all


def test_goals_compare_each_headline_figure_with_its_target() -> None:
    results = {"idle": {"idle_cpu_percent": 3.2},
               "publish": {"ratio_single_to_bare_http": 0.55, "ratio_batch_to_bare_http": 0.9},
               "sourcing": {"uncontended": {"appends_per_s": 400.0,
                                            "latency_ms": {"p99": 300.0}}},
               "delivery": {"error": "RuntimeError: boom"}}
    goals = bench_all.goals(results)
    assert goals["idle_cpu_percent_of_one_core"] == {"value": 3.2, "goal": "< 5", "met": True}
    assert goals["http_single_ratio_to_bare_endpoint"]["met"] is False
    assert goals["http_batch_ratio_to_bare_endpoint"]["met"] is True
    assert goals["appends_per_s_uncontended"]["met"] is False
    assert goals["append_p99_ms_uncontended"]["met"] is False
    assert goals["delivery_ratio_to_raw_posts"] == {"value": None, "goal": ">= 0.5", "met": None}
    assert set(goals) == {name for name, *_ in bench_all.GOALS}


def test_a_failing_kind_is_reported_and_the_others_still_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[tuple[str, int]] = []

    def fake_import(name: str) -> object:
        kind = name.rsplit(".", 1)[1]

        def run(args: argparse.Namespace) -> dict[str, object]:
            ran.append((args.kind, args.events))
            if kind == "publish":
                raise RuntimeError("the worker never started")
            return {"kind": kind}

        return argparse.Namespace(**{f"run_{kind}": run})

    monkeypatch.setattr(bench_all.importlib, "import_module", fake_import)
    out = bench_all.run_all(argparse.Namespace(kind="all", events=1000, tracing=False))
    assert [kind for kind, _ in ran] == list(bench_all.EVENTS)
    assert dict(ran)["pipeline"] == 1000 and dict(ran)["sourcing"] == 1000  # --events caps
    assert out["publish"] == {"error": "RuntimeError: the worker never started"}
    assert out["delivery"] == {"kind": "delivery"}
    assert "goals" in out and set(out["seconds"]) == set(bench_all.EVENTS)
