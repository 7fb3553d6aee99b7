"""Faust table declarations (RocksDB-backed, changelogged).

Features declare their tables here, keyed so that one partition owns an aggregate or window key;
``install`` is called once by ``esb.app.create_app``. Note: PyTables is also importable as
``tables``; ``tests/unit/test_layout.py`` proves this package is the one loaded.
"""

from __future__ import annotations

from typing import Any

ESB_TABLES_PACKAGE = True


def install(app: Any) -> None:
    """Register the bus's tables with the app (none in the spine yet)."""
