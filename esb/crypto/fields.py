"""Dotted paths into a JSON document (``customer.email``): the only addressing personal-field
declarations need. Pure; objects only (list items are not addressable by design)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

MISSING: Any = object()


def normalise(path: str) -> str:
    """Paths may name the seed's ``payload`` (or the CloudEvent's ``data``) as their root."""
    for root in ("payload.", "data.", "$."):
        if path.startswith(root):
            return path[len(root):]
    return path


def get(doc: Any, path: str) -> Any:
    node = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def put(doc: dict[str, Any], path: str, value: Any) -> None:
    """Replace the value at an existing ``path`` (callers checked it with :func:`get`)."""
    *parents, leaf = path.split(".")
    node = doc
    for part in parents:
        node = node[part]
    node[leaf] = value


def transform(doc: Any, match: Callable[[Any], bool], apply: Callable[[Any], Any]) -> Any:
    """A copy of ``doc`` where every node ``match`` accepts is replaced by ``apply(node)``."""
    if match(doc):
        return apply(doc)
    if isinstance(doc, dict):
        return {k: transform(v, match, apply) for k, v in doc.items()}
    if isinstance(doc, list):
        return [transform(v, match, apply) for v in doc]
    return doc


def walk(doc: Any, match: Callable[[Any], bool]) -> Iterator[Any]:
    """Every node ``match`` accepts, depth first (not descending into matches)."""
    if match(doc):
        yield doc
    elif isinstance(doc, dict):
        for v in doc.values():
            yield from walk(v, match)
    elif isinstance(doc, list):
        for v in doc:
            yield from walk(v, match)
