"""Business rules: CEL predicates checked after the schema, per event.

Variables: every top-level payload field by its name, and the whole payload as ``payload`` (which
wins if the payload itself has a top-level field called ``payload``; reach that one as
``payload.payload``). Rules are CEL, not Python: seed 001's example
``profile_data.email.endswith(('@company.com', '@partner.com'))`` is written
``profile_data.email.endsWith('@company.com') || profile_data.email.endsWith('@partner.com')``.
Compilation happens at registration (:func:`compile_rules` raises ``ExpressionError``); an unknown
function such as ``endswith`` is only found when evaluated, and then fails the event with the rule
named, like a rule evaluating false.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from esb.errors import ExpressionError
from esb.expressions import Expression, compile_expression
from esb.schemas.models import BusinessRule, FieldError


def compile_rules(rules: Iterable[BusinessRule]) -> list[tuple[BusinessRule, Expression]]:
    """Compile every rule once; the error names the failing rule."""
    compiled = []
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise ExpressionError(f"duplicate business rule name '{rule.name}'", rule=rule.name)
        seen.add(rule.name)
        try:
            compiled.append((rule, compile_expression(rule.rule)))
        except ExpressionError as exc:
            raise ExpressionError(  # a refused rule may be huge: echo its start only
                f"business rule '{rule.name}': {exc.message}", rule=rule.name,
                expression=rule.rule[:200],
                errors=[{"path": f"$.business_rules['{rule.name}']", "message": exc.message}],
            ) from exc
    return compiled


_STRING_LITERAL = re.compile(
    r'"""[\s\S]*?"""'  # triple-quoted
    r"|'''[\s\S]*?'''"
    r'|"(?:\\.|[^"\\])*"'  # double-quoted, with escapes
    r"|'(?:\\.|[^'\\])*'"  # single-quoted, with escapes
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@lru_cache(maxsize=4096)
def referenced_names(source: str) -> frozenset[str]:
    """Every identifier in the rule outside string literals: a superset of its variables.

    Handing CEL only these (not the whole payload) matters: converting variables into CEL values
    costs time per variable and per byte (measured: ~50 µs for a 200-byte payload against ~6 µs
    for the one field a rule reads).
    """
    return frozenset(_IDENTIFIER.findall(_STRING_LITERAL.sub("''", source)))


@lru_cache(maxsize=1024)
def _compiled(
    rules: tuple[BusinessRule, ...],
) -> list[tuple[BusinessRule, Expression, frozenset[str]]]:
    """Per-event callers pass the same rules again and again: compile and scan them once."""
    return [(rule, expression, referenced_names(rule.rule))
            for rule, expression in compile_rules(rules)]


def rule_variables(payload: Any) -> dict[str, Any]:
    variables: dict[str, Any] = dict(payload) if isinstance(payload, Mapping) else {}
    variables["payload"] = payload
    return variables


def evaluate_rules(rules: Iterable[BusinessRule], payload: Any) -> list[FieldError]:
    """One error per rule that is false or cannot be evaluated (e.g. a field is missing)."""
    errors: list[FieldError] = []
    variables = rule_variables(payload)
    for rule, expression, names in _compiled(tuple(rules)):
        message = rule.description or rule.rule
        used = {name: variables[name] for name in names if name in variables}
        try:
            if expression.matches(used):
                continue
        except ExpressionError as exc:
            message = f"{message} (rule could not be evaluated: {exc.message})"
        errors.append(FieldError(path="$", rule=rule.name, message=message))
    return errors
