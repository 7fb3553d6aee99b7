"""JSON as the bus accepts it from tenants: standard JSON only, nesting bounded.

Python's ``json`` accepts ``NaN``/``Infinity`` and numbers like ``1e400`` (not JSON: re-encoded
they make invalid JSON for every consumer) and lone UTF-16 surrogates (they cannot be encoded as
UTF-8 again), and it recurses once per nesting level, raising ``RecursionError`` — not
``ValueError`` — on a very deep document, which escaped callers' error handling (a 500 on HTTP, a
crashed router on the ingress). Every tenant-supplied JSON document — HTTP bodies, structured
CloudEvents on the ingress, payloads a stage decodes — goes through :func:`loads`, so the same
document is accepted or refused on every path (ADR 0009, ADR 0012).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

DEFAULT_MAX_DEPTH = 64


class JsonRefused(ValueError):
    """The document is not JSON the bus accepts; the message says why."""

    def __init__(self, message: str, *, depth_limit: int | None = None) -> None:
        super().__init__(message)
        self.depth_limit = depth_limit


# The depth is checked first, on bytes and without recursion, at C speed: drop escaped
# backslashes and quotes, keep only quotes and brackets, drop strings, then strip innermost
# "[]" pairs once per level (bytes.replace does not rescan what it produced).
_KEEP_STRUCTURE = bytes(range(256)).translate(None, b'"[]{}')
_FOLD_BRACKETS = bytes.maketrans(b"{}", b"[]")
_REDUCED_STRING = re.compile(rb'"[^"]*"')


def depth_exceeds(body: bytes, max_depth: int) -> bool:
    """True when ``body`` nests arrays/objects deeper than ``max_depth`` (or its brackets do not
    balance, which json.loads would refuse anyway). Brackets inside strings do not count."""
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False
    if b'\\"' in body:  # \\ and \" are string content; remove them before finding strings
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    reduced = body.translate(_FOLD_BRACKETS, _KEEP_STRUCTURE).replace(b'""', b"")
    if b'"' in reduced:
        reduced = _REDUCED_STRING.sub(b"", reduced)
    if b"[" * (max_depth + 1) in reduced:  # the usual attack: a long run of openers
        return True
    for _ in range(max_depth):
        inner = reduced.replace(b"[]", b"")
        if len(inner) == len(reduced):
            break
        reduced = inner
    return bool(reduced)


def _refuse_constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JsonRefused(f"number {text[:40]} is out of range")
    return value


#: one decoder: ``json.loads(..., parse_float=...)`` builds a new JSONDecoder on every call
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def loads(data: bytes | bytearray | str, *, max_depth: int = DEFAULT_MAX_DEPTH,
          allow_nul: bool = True) -> Any:
    """Parse ``data`` or raise :class:`JsonRefused` (a ``ValueError``): not standard JSON,
    nested deeper than ``max_depth``, a non-finite number or a lone surrogate. With
    ``allow_nul=False`` a string holding NUL (``\\u0000``) is refused too: PostgreSQL can store
    it neither in text nor in jsonb."""
    body = data.encode() if isinstance(data, str) else bytes(data)
    if depth_exceeds(body, max_depth):
        raise JsonRefused(f"JSON nests deeper than {max_depth} levels (or its brackets do not "
                          "balance)", depth_limit=max_depth)
    try:
        value = _DECODER.decode(body.decode())
    except JsonRefused:
        raise
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise JsonRefused(f"not valid JSON: {exc}") from None
    if b"\\u" in body or b"\\U" in body:  # escapes are the only way in for these two
        try:
            json.dumps(value, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise JsonRefused("a string holds a lone UTF-16 surrogate") from None
        if not allow_nul and b"\\u0000" in body and _has_nul(value):
            raise JsonRefused("strings must not contain the NUL character (\\u0000)")
    return value


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False
