"""The worker's local RocksDB store of partition states (rocksdict), a cache of the changelog.

Each value is stored with the changelog offset it was written at. On partition assignment the
runtime compares that offset with the changelog's last one: equal means the local copy is
current (no restore read); otherwise the changelog's last record wins (one key per changelog
partition, so the last record IS the latest state). The local store is only ever an
optimisation: losing it costs one read per partition, never correctness.

Every poll rewrites its partitions' whole values, so the memtable holds almost nothing but dead
versions of a few hundred keys: RocksDB's default 64 MB write buffer made the worker's RSS a
64 MB sawtooth (``esb bench soak``); a small buffer flushes often and the flushed files stay tiny.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from rocksdict import Options, Rdict

_OFFSET = struct.Struct(">q")
WRITE_BUFFER_BYTES = 4 << 20


def _options() -> Any:
    options = Options()
    options.create_if_missing(True)
    options.set_write_buffer_size(WRITE_BUFFER_BYTES)
    return options


class LocalStateStore:
    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._db: Any = Rdict(str(path), _options())

    def load(self, key: str) -> tuple[int, bytes] | None:
        """(changelog offset, encoded state) or None when this replica never held the key."""
        raw = self._db.get(key.encode())
        if raw is None:
            return None
        (offset,) = _OFFSET.unpack_from(raw)
        return offset, bytes(raw[_OFFSET.size:])

    def save(self, key: str, changelog_offset: int, encoded: bytes) -> None:
        self._db[key.encode()] = _OFFSET.pack(changelog_offset) + encoded

    def close(self) -> None:
        self._db.close()
