"""Linear-time matching for tenant-supplied globs and regular expressions (ADR 0010).

Patterns come from tenants (subscription and stream ``event_types``, read models, JSON Schema
``pattern``) and run on the shared event loop, so they must never backtrack: Python's ``re``
takes exponential time on ``^(a+)+$`` and polynomial time on ``*a*a*a*b`` globs. Everything here
compiles to RE2 (``google-re2``), whose automata run in time linear in the input, and every
compilation is cached, so per-event callers pay a dictionary lookup.

Globs (case-sensitive, like CloudEvents ``type``): ``*`` any run of characters including dots,
``?`` one character. With ``sets=True`` (subscriptions, streams: :func:`fnmatch.fnmatchcase`
semantics) ``[seq]``/``[!seq]`` is a character set; with ``sets=False`` (the read side, whose
globs must agree with SQL ``LIKE``) ``[`` is a literal character.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import re2

__all__ = ["GlobSet", "LinearRegex", "PatternError", "compile_globs", "glob_matches",
           "has_wildcards", "linear_regex", "regex_error"]

#: Longest pattern (characters) a tenant may hand us; RE2's memory budget bounds the rest.
MAX_PATTERN_CHARS = 4096

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused tenant pattern is an answer, not a log line
_OPTIONS.never_capture = True  # callers only ask "does it match?"

# google-re2's public ``search`` builds match objects and offset maps (~5 µs a call); its
# compiled program answers the same question in ~0.7 µs. Used when present, else the public API.
_ANCHOR = getattr(re2, "_Anchor", None)


class PatternError(ValueError):
    """A pattern RE2 cannot run in linear time (backreference, lookaround, too large …)."""


def regex_error(pattern: Any) -> str | None:
    """Why RE2 cannot compile ``pattern`` (None: it can). Uncached, for one-off checks."""
    try:
        _compile(pattern)
    except PatternError as exc:
        return str(exc)
    return None


class LinearRegex:
    """An RE2 program that answers only "does it match?" (no match objects: cheap per call)."""

    __slots__ = ("_program", "_public", "pattern")

    def __init__(self, pattern: str, compiled: Any) -> None:
        self.pattern = pattern
        self._public = compiled
        program = getattr(compiled, "_regexp", None)
        self._program = program if _ANCHOR is not None and hasattr(program, "Match") else None

    def _matches(self, anchor: str, text: str) -> bool:
        if self._program is None:
            method = self._public.search if anchor == "UNANCHORED" else self._public.fullmatch
            return method(text) is not None
        data = text.encode("utf-8", "surrogatepass")
        spans = self._program.Match(getattr(_ANCHOR, anchor), data, 0, len(data))
        return spans[0][0] != -1

    def search(self, text: str) -> bool:
        """Does ``pattern`` match anywhere in ``text`` (JSON Schema ``pattern`` semantics)?"""
        return self._matches("UNANCHORED", text)

    def fullmatch(self, text: str) -> bool:
        return self._matches("ANCHOR_BOTH", text)

    def __repr__(self) -> str:
        return f"LinearRegex({self.pattern!r})"


@lru_cache(maxsize=4096)
def linear_regex(pattern: str) -> LinearRegex:
    """``pattern`` compiled by RE2, once; :class:`PatternError` says why it cannot be."""
    return LinearRegex(pattern, _compile(pattern))


def _compile(pattern: Any, *, limit: bool = True) -> Any:
    if not isinstance(pattern, str):
        raise PatternError(f"pattern must be a string, got {type(pattern).__name__}")
    if limit and len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(f"pattern is {len(pattern)} characters, at most "
                           f"{MAX_PATTERN_CHARS} are allowed")
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(f"pattern is not supported by the linear-time engine (RE2): "
                           f"{reason}") from None


def _literal(char: str) -> str:
    if char.isalnum() or char == "_" or ord(char) > 0x7F:
        return char  # RE2 reads non-ASCII literally (UTF-8)
    if char.isprintable():
        return "\\" + char  # RE2 allows escaping any ASCII punctuation
    return f"\\x{{{ord(char):x}}}"


def _set(pattern: str, start: int) -> tuple[str, int] | None:
    """The RE2 class for the set opening at ``pattern[start] == '['``, fnmatch rules.

    Returns ``(class, index after ']')`` or None when the set is unterminated (then ``[`` is
    literal, as in :mod:`fnmatch`).
    """
    i = start + 1
    negate = i < len(pattern) and pattern[i] == "!"
    if negate:
        i += 1
    body_start = i
    if i < len(pattern) and pattern[i] == "]":
        i += 1  # a leading ']' is a member
    while i < len(pattern) and pattern[i] != "]":
        i += 1
    if i >= len(pattern):
        return None
    body, parts, j = pattern[body_start:i], [], 0
    while j < len(body):
        if j + 2 < len(body) and body[j + 1] == "-":
            low, high = body[j], body[j + 2]
            if low <= high:  # fnmatch drops reversed ranges
                parts.append(f"{_literal(low)}-{_literal(high)}")
            j += 3
        else:
            parts.append(_literal(body[j]))
            j += 1
    if not parts:  # nothing can match an empty set; '[!]' style sets match any character
        return ("." if negate else "[^\\x{0}-\\x{10ffff}]"), i + 1
    return f"[{'^' if negate else ''}{''.join(parts)}]", i + 1


def _translate(pattern: str, sets: bool) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            if not out or out[-1] != ".*":  # '**' is '*'
                out.append(".*")
            i += 1
        elif char == "?":
            out.append(".")
            i += 1
        elif char == "[" and sets and (found := _set(pattern, i)) is not None:
            out.append(found[0])
            i = found[1]
        else:
            out.append(_literal(char))
            i += 1
    return "".join(out)


def has_wildcards(pattern: str, *, sets: bool = True) -> bool:
    """True when ``pattern`` is a glob rather than an exact name."""
    return "*" in pattern or "?" in pattern or (sets and "[" in pattern)


class GlobSet:
    """Several globs, any of which may match: exact names a set lookup, the rest one RE2 DFA."""

    __slots__ = ("_exact", "_match_all", "_regex")

    def __init__(self, patterns: Iterable[str], *, sets: bool = True) -> None:
        patterns = list(patterns)
        for pattern in patterns:
            if len(pattern) > MAX_PATTERN_CHARS:
                raise PatternError(f"glob is {len(pattern)} characters, at most "
                                   f"{MAX_PATTERN_CHARS} are allowed")
        globs = [p for p in patterns if has_wildcards(p, sets=sets)]
        self._match_all = "*" in patterns
        self._exact = frozenset(p for p in patterns if not has_wildcards(p, sets=sets))
        source = "(?s:" + "|".join(_translate(g, sets) for g in globs) + ")"
        self._regex = LinearRegex(source, _compile(source, limit=False)) if globs else None

    def __call__(self, value: str) -> bool:
        if self._match_all or value in self._exact:
            return True
        return self._regex is not None and self._regex.fullmatch(value)


@lru_cache(maxsize=8192)
def _compiled(patterns: tuple[str, ...], sets: bool) -> GlobSet:
    return GlobSet(patterns, sets=sets)


def compile_globs(patterns: Iterable[str], *, sets: bool = True) -> GlobSet:
    """The cached :class:`GlobSet` for ``patterns``; :class:`PatternError` if one is too big."""
    return _compiled(tuple(patterns), sets)


def glob_matches(pattern: str, value: str, *, sets: bool = True) -> bool:
    """Does ``value`` match the single glob ``pattern``? (Compiled once, then cached.)"""
    return _compiled((pattern,), sets)(value)
