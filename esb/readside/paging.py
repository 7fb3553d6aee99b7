"""Keyset-paging cursors and event-type globs, both pure.

A cursor is opaque to clients: base64url of a small JSON document holding the sort key of the
last row served. It carries no filters, so it only means "after this row" and is safe to
forge: every query still applies the tenant and filters as parameters.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from esb import globs
from esb.errors import InvalidRequest


def encode_cursor(kind: str, values: list[Any]) -> str:
    raw = json.dumps({"k": kind, "v": values}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str, arity: int) -> list[Any]:
    """The sort-key values in ``cursor``; :class:`InvalidRequest` if it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        body = json.loads(base64.urlsafe_b64decode(padded.encode()))
        values = body["v"]
        if body["k"] != kind or not isinstance(values, list) or len(values) != arity:
            raise ValueError("cursor of another kind")
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise InvalidRequest("invalid cursor", parameter="cursor") from exc
    return values


LIKE_ESCAPE = "\\"


def glob_to_like(pattern: str) -> tuple[str, bool]:
    """Translate a glob (``*`` any run, ``?`` one character) to a LIKE pattern.

    ``%``, ``_`` and the escape character itself are escaped, so they match literally; use
    the result with ``LIKE %s ESCAPE '\\'``. Returns ``(like_pattern, has_wildcards)`` so a
    pattern without wildcards can be compared with ``=`` instead.
    """
    out: list[str] = []
    wild = False
    for char in pattern:
        if char == "*":
            out.append("%")
            wild = True
        elif char == "?":
            out.append("_")
            wild = True
        elif char in ("%", "_", LIKE_ESCAPE):
            out.append(LIKE_ESCAPE + char)
        else:
            out.append(char)
    return "".join(out), wild


def glob_matches(pattern: str, value: str) -> bool:
    """The same glob semantics in Python (``*`` and ``?`` only, everything else literal), in
    linear time (:mod:`esb.globs`)."""
    return globs.glob_matches(pattern, value, sets=False)
