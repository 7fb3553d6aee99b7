"""Reading Prometheus text in tests: the values of one metric's samples that carry given labels."""

from __future__ import annotations

import re


def values(text: str, metric: str, **labels: str) -> list[float]:
    """Sample values of ``metric`` (exact sample name) whose labels include ``labels``."""
    out = []
    for line in text.splitlines():
        if not line.startswith(metric + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            out.append(float(line.rsplit(" ", 1)[1]))
    return out
