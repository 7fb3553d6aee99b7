"""Safe user expressions in CEL (Common Expression Language), compiled once.

Used for stream-processor filters and maps, subscription filters and schema business rules.
CEL is side-effect free and terminates, so evaluating a user's expression can never run code:
we never ``eval`` user input. The ``common-expression-language`` package (Rust core) evaluates
in a few microseconds, which matters because filters run per event.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import cel

from esb.errors import ExpressionError


class Expression:
    """A compiled CEL expression; ``evaluate`` takes the variables as a mapping."""

    __slots__ = ("_program", "source")

    def __init__(self, source: str) -> None:
        if not isinstance(source, str) or not source.strip():
            raise ExpressionError("expression must be a non-empty string", expression=source)
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
def compile_expression(source: str) -> Expression:
    """Compile with a process-wide cache, so per-event callers never recompile."""
    return Expression(source)
