"""Safe user expressions in CEL (Common Expression Language), compiled once.

Used for stream-processor filters and maps, subscription filters and schema business rules.
CEL is side-effect free and terminates, so evaluating a user's expression can never run code:
we never ``eval`` user input. The ``common-expression-language`` package (Rust core) evaluates
in a few microseconds, which matters because filters run per event.

Expressions are tenant input compiled on the shared worker, so they are bounded before the parser
sees them (ADR 0010): at most :data:`MAX_EXPRESSION_CHARS` characters and
:data:`MAX_EXPRESSION_DEPTH` levels of brackets (``(``, ``[``, ``{``; string literals do not
count). Beyond either, registration fails with a 422 naming the limit.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import cel

from esb.errors import ExpressionError

#: Longest expression (characters); real filters and rules are a few hundred at most.
MAX_EXPRESSION_CHARS = 4096
#: Deepest bracket nesting; real expressions rarely pass 5.
MAX_EXPRESSION_DEPTH = 32

_OPEN, _CLOSE = "([{", ")]}"


def nesting_depth(source: str) -> int:
    """Deepest bracket nesting outside string literals; one linear pass, no regex."""
    depth = deepest = 0
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        if char in "'\"":
            raw = i > 0 and source[i - 1] in "rR" and (i < 2 or not source[i - 2].isalnum())
            quote = source[i:i + 3] if source[i:i + 3] == char * 3 else char
            i += len(quote)
            while i < n and not source.startswith(quote, i):
                i += 2 if source[i] == "\\" and not raw else 1
            i += len(quote)
            continue
        if char in _OPEN:
            depth += 1
            deepest = max(deepest, depth)
        elif char in _CLOSE:
            depth = max(depth - 1, 0)
        i += 1
    return deepest


def check_bounds(source: str) -> None:
    """Refuse an expression too long or too deeply nested to compile on the shared worker."""
    if len(source) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(
            f"expression is {len(source)} characters long, at most {MAX_EXPRESSION_CHARS} "
            "are allowed", expression=source[:200], limit=MAX_EXPRESSION_CHARS,
            errors=[{"path": "$", "message": f"longer than {MAX_EXPRESSION_CHARS} characters"}])
    depth = nesting_depth(source)
    if depth > MAX_EXPRESSION_DEPTH:
        raise ExpressionError(
            f"expression nests brackets {depth} levels deep, at most {MAX_EXPRESSION_DEPTH} "
            "are allowed", expression=source[:200], limit=MAX_EXPRESSION_DEPTH,
            errors=[{"path": "$", "message": f"nested deeper than {MAX_EXPRESSION_DEPTH} levels"}])


class Expression:
    """A compiled CEL expression; ``evaluate`` takes the variables as a mapping."""

    __slots__ = ("_program", "source")

    def __init__(self, source: str) -> None:
        if not isinstance(source, str) or not source.strip():
            raise ExpressionError("expression must be a non-empty string", expression=source)
        check_bounds(source)
        self.source = source
        try:
            self._program = cel.compile(source)
        except Exception as exc:  # the library raises plain ValueError/RuntimeError
            raise ExpressionError(f"invalid CEL expression: {exc}", expression=source) from exc

    def evaluate(self, variables: dict[str, Any]) -> Any:
        try:
            return self._program.execute(variables)
        except Exception as exc:
            raise ExpressionError(
                f"expression failed to evaluate: {exc}", expression=self.source
            ) from exc

    def matches(self, variables: dict[str, Any]) -> bool:
        """Evaluate as a predicate; a non-boolean result is an error, not a truthiness guess."""
        result = self.evaluate(variables)
        if not isinstance(result, bool):
            raise ExpressionError(
                f"expression must evaluate to a boolean, got {type(result).__name__}",
                expression=self.source,
            )
        return result

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


@lru_cache(maxsize=4096)
def _cached_expression(source: str) -> Expression:
    return Expression(source)


def compile_expression(source: str) -> Expression:
    """Compile with a process-wide cache, so per-event callers never recompile; oversized input
    is refused before it can become a cache key."""
    if isinstance(source, str):
        check_bounds(source)
    return _cached_expression(source)
