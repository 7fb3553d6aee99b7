"""Compatibility levels over a subject's history, for Avro and JSON Schema alike.

Non-transitive levels compare the new schema with the latest earlier version only; transitive ones
with every earlier version. BACKWARD: the new schema reads data written with the old one (Avro:
new is the reader); FORWARD: the old reads data written with the new; FULL: both.
"""

from __future__ import annotations

from collections.abc import Sequence

from esb.schemas.avro_compat import avro_issues
from esb.schemas.json_compat import json_issues
from esb.schemas.models import (
    CompatibilityIssue,
    CompatibilityLevel,
    CompatibilityResult,
    Direction,
    SchemaType,
)


def pair_issues(
    schema_type: SchemaType,
    new_text: str,
    old_text: str,
    direction: Direction,
    against_version: int | None = None,
) -> list[CompatibilityIssue]:
    """Issues for one (new, old) pair in one direction; texts are canonical."""
    if schema_type is SchemaType.AVRO:
        if direction is Direction.BACKWARD:
            return avro_issues(new_text, old_text, direction, against_version)
        return avro_issues(old_text, new_text, direction, against_version)
    return json_issues(new_text, old_text, direction, against_version)


def check_compatibility(
    schema_type: SchemaType,
    new_text: str,
    previous: Sequence[tuple[int, str]],
    level: CompatibilityLevel,
) -> CompatibilityResult:
    """Check ``new_text`` against ``previous`` ((version, text), oldest first) at ``level``."""
    if level is CompatibilityLevel.NONE or not previous:
        return CompatibilityResult(is_compatible=True, level=level)
    targets = list(previous) if level.is_transitive else [previous[-1]]
    issues: list[CompatibilityIssue] = []
    for version, old_text in reversed(targets):
        for direction in level.directions:
            issues.extend(pair_issues(schema_type, new_text, old_text, direction, version))
    return CompatibilityResult(
        is_compatible=not issues,
        level=level,
        checked_versions=[v for v, _ in targets],
        issues=issues,
    )
