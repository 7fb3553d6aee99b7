"""CUSTOM processors: user code installed as a plugin under the ``esb.processors`` entry points.

A plugin package declares, in its own pyproject::

    [project.entry-points."esb.processors"]
    enrich_geo = "my_pkg.geo:GeoEnricher"

The entry point names a factory (usually the class); it is called with the processor's
``processing_logic.config`` as keyword arguments and must return an object with
``process(event) -> list[event]`` (an empty list drops the event). Only installed code runs:
names are never imported from user input directly.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol, runtime_checkable

from esb.errors import NotFound, ValidationFailed

ENTRY_POINT_GROUP = "esb.processors"


@runtime_checkable
class Processor(Protocol):
    """What a CUSTOM processor implements; must be deterministic for replay safety."""

    def process(self, event: dict[str, Any]) -> list[dict[str, Any]]: ...


def available_processors() -> list[str]:
    """Names of the installed custom processors, sorted."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def find_entry_point(name: str) -> EntryPoint:
    """The entry point for ``name``; NotFound lists what is installed."""
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name == name:
            return entry_point
    installed = ", ".join(available_processors()) or "none"
    raise NotFound(
        f"no custom processor named {name!r} in entry point group {ENTRY_POINT_GROUP!r} "
        f"(installed: {installed})",
        entry_point=name,
    )


def load_processor(name: str, config: dict[str, Any] | None = None) -> Processor:
    """Import the plugin, build it with ``config``, and check it is a Processor."""
    entry_point = find_entry_point(name)
    try:
        factory = entry_point.load()
    except Exception as exc:
        raise ValidationFailed(
            f"custom processor {name!r} failed to import: {exc}",
            errors=[{"path": "processing_logic.entry_point", "message": str(exc)}],
        ) from exc
    try:
        processor = factory(**(config or {}))
    except TypeError as exc:
        raise ValidationFailed(
            f"custom processor {name!r} rejected its config: {exc}",
            errors=[{"path": "processing_logic.config", "message": str(exc)}],
        ) from exc
    if not isinstance(processor, Processor):
        raise ValidationFailed(
            f"custom processor {name!r} has no process(event) method",
            errors=[{"path": "processing_logic.entry_point",
                     "message": f"{type(processor).__name__} is not a Processor"}],
        )
    return processor


def run_custom(processor: Processor, event: dict[str, Any]) -> list[dict[str, Any]]:
    """Call the plugin and check its answer, so a bad plugin fails clearly, not downstream."""
    outputs = processor.process(event)
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise ValidationFailed(
            f"custom processor {type(processor).__name__}.process must return a list of dicts",
            errors=[{"path": "process", "message": f"returned {type(outputs).__name__}"}],
        )
    return outputs
