"""Does an event belong to a subscription? Decided from headers first, payload last.

A :class:`SubscriptionMatcher` is built once per subscription and asked once per event, so it
front-loads all work: globs become one compiled regex, filter values become string sets,
the CEL filter is compiled. Checks run cheapest first (type, then attribute criteria, then CEL)
and the payload is decoded only when the CEL filter names ``payload`` and everything before it
passed, via :class:`LazyPayload`.

Event-type globs use :func:`fnmatch.fnmatchcase` semantics, case-sensitive (CloudEvents ``type``
is case-sensitive), matched in linear time by the shared :mod:`esb.globs` helper (ADR 0010):
``*`` matches any run of characters *including dots*, ``?`` one character, ``[seq]`` a set. So
``user.*`` matches ``user.created`` and also ``user.profile.updated``: the seed's patterns name
families of events, and a subscriber to ``user.*`` expects all of them.
(This is not NATS subject matching, where ``*`` stops at a dot.)

``filter_criteria`` compares CloudEvents attributes as strings (Kafka headers are strings):
``{"tenant_id": "t1", "aggregate_type": ["User", "Order"]}`` means tenantid == "t1" AND
aggregatetype in {User, Order}. Seed names and CloudEvents names are both accepted. An absent
attribute never matches.

CEL variables: ``payload`` (the decoded data), ``attributes`` (map of CloudEvents attributes),
every present attribute by its CloudEvents name (``type``, ``tenantid`` …) and every seed field
name (``event_type``, ``tenant_id``, ``aggregate_type`` …; null when absent). A filter that fails
to evaluate (missing key, undecodable payload) does not match; ``on_error`` hears about it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from esb.delivery.attributes import SEED_FIELDS, cloudevents_attribute_name
from esb.errors import EsbError
from esb.expressions import Expression, compile_expression
from esb.globs import GlobSet, compile_globs

if TYPE_CHECKING:
    from esb.delivery.models import FilterValue, SubscriptionCreate

__all__ = ["LazyPayload", "SubscriptionMatcher", "TypeMatcher", "attribute_text"]

_SEED_ALIASES: tuple[tuple[str, str], ...] = tuple(
    (seed, cloudevents_attribute_name(seed)) for seed in SEED_FIELDS
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_JSON_TYPE = re.compile(r"^(application|text)/([\w.\-]+\+)?json\s*(;.*)?$", re.IGNORECASE)


class LazyPayload:
    """Event data bytes, decoded on first use and at most once."""

    __slots__ = ("_content_type", "_decoded", "_raw", "_value")

    def __init__(self, raw: bytes, content_type: str | None = "application/json") -> None:
        self._raw = raw
        self._content_type = content_type
        self._decoded = False
        self._value: Any = None

    @property
    def raw(self) -> bytes:
        return self._raw

    @property
    def is_decoded(self) -> bool:
        return self._decoded

    def value(self) -> Any:
        """JSON data as Python values; other text as ``str``; anything else as ``bytes``."""
        if not self._decoded:
            self._value = self._decode()
            self._decoded = True
        return self._value

    def _decode(self) -> Any:
        ctype = self._content_type or "application/json"
        if _JSON_TYPE.match(ctype):
            return json.loads(self._raw) if self._raw else None  # ValueError if not JSON
        if ctype.lower().startswith("text/"):
            return self._raw.decode("utf-8")
        return self._raw


def attribute_text(value: Any) -> str:
    """The header-string form of an attribute or filter value (``True`` -> ``"true"``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _as_list(value: FilterValue) -> list[Any]:
    return value if isinstance(value, list) else [value]


class TypeMatcher:
    """Event-type globs compiled once (:func:`esb.globs.compile_globs`: exact names a set lookup,
    globs one RE2 program, so a tenant's pattern cannot make matching backtrack)."""

    __slots__ = ("_globs",)

    def __init__(self, patterns: Iterable[str]) -> None:
        patterns = list(patterns)
        if not patterns:
            raise ValueError("at least one event type pattern is required")
        self._globs: GlobSet = compile_globs(patterns)

    def __call__(self, event_type: str) -> bool:
        return self._globs(event_type)


class SubscriptionMatcher:
    """Decides per event whether a subscription wants it; build once per subscription."""

    __slots__ = ("_criteria", "_expression", "_names", "_on_error", "_type_matcher",
                 "needs_payload")

    def __init__(
        self,
        event_type_patterns: Iterable[str] = ("*",),
        filter_criteria: Mapping[str, FilterValue] | None = None,
        filter_expression: str | None = None,
        *,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self._type_matcher = TypeMatcher(event_type_patterns)
        self._criteria: tuple[tuple[str, frozenset[str]], ...] = tuple(
            (cloudevents_attribute_name(name), frozenset(map(attribute_text, _as_list(value))))
            for name, value in (filter_criteria or {}).items()
        )
        self._expression: Expression | None = (
            compile_expression(filter_expression) if filter_expression else None
        )
        # Only the variables the expression names are handed to CEL: building the context is
        # most of the cost of an evaluation (about 5 us for two variables, 80 us for twenty).
        self._names = frozenset(_IDENTIFIER.findall(filter_expression or ""))
        self.needs_payload = "payload" in self._names
        self._on_error = on_error

    @classmethod
    def from_subscription(cls, subscription: SubscriptionCreate, *,
                          on_error: Callable[[Exception], None] | None = None
                          ) -> SubscriptionMatcher:
        return cls(subscription.event_type_patterns, subscription.filter_criteria,
                   subscription.filter_expression, on_error=on_error)

    def matches_type(self, event_type: str) -> bool:
        return self._type_matcher(event_type)

    def matches(self, attributes: Mapping[str, Any], payload: LazyPayload | None = None) -> bool:
        """True if the event passes the type globs, the criteria and the CEL filter."""
        event_type = attributes.get("type")
        if event_type is None or not self._type_matcher(attribute_text(event_type)):
            return False
        for name, accepted in self._criteria:
            value = attributes.get(name)
            if value is None or attribute_text(value) not in accepted:
                return False
        if self._expression is None:
            return True
        try:
            return self._expression.matches(self._variables(attributes, payload))
        except (EsbError, ValueError) as exc:  # ExpressionError, or a payload that is not JSON
            if self._on_error is not None:
                self._on_error(exc)
            return False

    def _variables(self, attributes: Mapping[str, Any], payload: LazyPayload | None
                   ) -> dict[str, Any]:
        names = self._names
        variables: dict[str, Any] = {
            name: attribute_text(value) for name, value in attributes.items() if name in names
        }
        for seed, ce_name in _SEED_ALIASES:
            if seed in names:
                value = attributes.get(ce_name)
                variables[seed] = None if value is None else attribute_text(value)
        if "attributes" in names:
            variables["attributes"] = {k: attribute_text(v) for k, v in attributes.items()}
        if self.needs_payload:
            variables["payload"] = payload.value() if payload is not None else None
        return variables
