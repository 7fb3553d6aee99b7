"""Development-mode keys: created once per data directory, readable only by its owner.

Several workers of one data directory may start together: the first creates the file
(``O_EXCL``), the others read what it wrote. Production never calls this (keys are configured).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def dev_key(path: Path, generate: Callable[[], str]) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another worker of this data dir created it first
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(generate())
    return path.read_text().strip()
