"""Pure helpers of the read side (no database needed)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esb.errors import InvalidRequest
from esb.readside import glob_matches, glob_to_like
from esb.readside.paging import decode_cursor, encode_cursor


@pytest.mark.parametrize(
    ("glob", "like", "wild"),
    [
        ("user.created", "user.created", False),
        ("user.*", "user.%", True),
        ("user.?", "user._", True),
        ("rate_100%", "rate\\_100\\%", False),
        ("a\\b*", "a\\\\b%", True),
    ],
)
def test_glob_to_like(glob, like, wild):
    assert glob_to_like(glob) == (like, wild)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab.*?%_\\", max_size=8), st.text(alphabet="ab.%_\\", max_size=8))
def test_python_glob_agrees_with_a_like_reference(glob, value):
    like, _ = glob_to_like(glob)
    assert glob_matches(glob, value) == _like_matches(like, value)


def _like_matches(pattern: str, value: str) -> bool:
    """A tiny reference LIKE matcher (escape '\\') to cross-check the translation."""
    import re
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.fullmatch("".join(out), value, flags=re.DOTALL) is not None


def test_cursor_round_trip_and_kind_check():
    cursor = encode_cursor("s", [3, "evt_1"])
    assert decode_cursor(cursor, "s", 2) == [3, "evt_1"]
    with pytest.raises(InvalidRequest):
        decode_cursor(cursor, "tasc", 2)
    with pytest.raises(InvalidRequest):
        decode_cursor("%%%", "s", 2)
