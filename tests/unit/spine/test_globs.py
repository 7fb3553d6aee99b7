"""The shared linear-time glob helper (ADR 0010): semantics kept, backtracking gone."""

from __future__ import annotations

import ast
import fnmatch
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esb.delivery.matching import TypeMatcher
from esb.globs import PatternError, compile_globs, glob_matches, linear_regex
from esb.readside.paging import glob_to_like
from esb.readside.readmodels import ReadModelDefinition

ROOT = Path(__file__).resolve().parents[3]


def _like_reference(like: str, value: str) -> bool:
    """SQL LIKE with ESCAPE '\\', written independently of the helper."""
    out, i = [], 0
    while i < len(like):
        if like[i] == "\\":
            out.append(re.escape(like[i + 1]))
            i += 2
            continue
        out.append({"%": ".*", "_": "."}.get(like[i], re.escape(like[i])))
        i += 1
    return re.fullmatch("".join(out), value, flags=re.DOTALL) is not None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(st.sampled_from(list("ab.*?[]!-")), min_size=1, max_size=7),
                min_size=1, max_size=3),
       st.text(st.sampled_from(list("ab.-]![")), max_size=8))
def test_agrees_with_fnmatchcase_including_sets(patterns: list[str], value: str) -> None:
    expected = any(fnmatch.fnmatchcase(value, p) for p in patterns)
    assert compile_globs(patterns)(value) is expected
    assert TypeMatcher(patterns)(value) is expected


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(list("ab.*?[]%_\\")), min_size=1, max_size=7),
       st.text(st.sampled_from(list("ab.[]%_\\")), max_size=8))
def test_read_side_dialect_agrees_with_sql_like(pattern: str, value: str) -> None:
    """sets=False: '[' is literal, so a read model matches exactly what its LIKE rebuild reads."""
    like, _ = glob_to_like(pattern)
    assert glob_matches(pattern, value, sets=False) is _like_reference(like, value)


def test_adversarial_read_model_glob_is_linear(deadline: None) -> None:
    """The old read-model glob was ``.*a.*a…`` on Python's re: polynomial, seconds at 50k."""
    model = ReadModelDefinition(name="m", event_types=["*a*a*a*a*a*a*b"],
                                operations={"*a*a*a*a*a*a*b": "delete"})
    event_type = "a" * 50_000
    started = time.perf_counter()
    assert not model.feeds_on(event_type)
    assert model.operation_for(event_type) == "upsert"
    assert model.feeds_on(event_type + "b")
    assert time.perf_counter() - started < 0.5


def test_adversarial_globs_everywhere_are_linear(deadline: None) -> None:
    value = "a" * 50_000
    started = time.perf_counter()
    for pattern in ("*a" * 40 + "b", "?" * 200 + "*b", "[a]*" * 30 + "b"):
        assert not glob_matches(pattern, value)
        assert not glob_matches(pattern, value, sets=False)
        assert not TypeMatcher([pattern])(value)
    assert time.perf_counter() - started < 0.5


def test_subscription_matcher_uses_the_shared_compiled_helper() -> None:
    patterns = ["user.*", "order.created"]
    assert TypeMatcher(patterns)._globs is compile_globs(patterns)  # compiled once, shared


def test_migrated_modules_have_no_glob_engine_of_their_own() -> None:
    """One way to match event-type globs: these modules go through esb.globs, not fnmatch/re."""
    for relative in ("esb/streams.py", "esb/delivery/matching.py", "esb/readside/readmodels.py"):
        tree = ast.parse((ROOT / relative).read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert "fnmatch" not in imported, relative
        assert "esb.globs" in imported, relative


def test_exact_names_dots_and_case() -> None:
    matcher = compile_globs(["user.*", "Order.Created"])
    assert matcher("user.profile.updated")  # '*' crosses dots
    assert matcher("Order.Created") and not matcher("order.created")  # case-sensitive
    assert compile_globs(["*"])("")
    assert not compile_globs(["[z-a]x"])("ax")  # empty set never matches, as in fnmatch
    assert compile_globs(["[!z-a]x"])("ax")


def test_regex_helper_refuses_backtracking_features() -> None:
    for pattern in (r"(a)\1", r"(?=a)b", r"(?<!a)b", "(" * 5 + "a"):
        with pytest.raises(PatternError, match=r"RE2|missing"):
            linear_regex(pattern)
    with pytest.raises(PatternError, match="at most"):
        linear_regex("a" * 5000)
