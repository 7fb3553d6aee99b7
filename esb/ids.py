"""Sortable identifiers: ``evt_`` + a monotonic ULID (Crockford base32, 26 chars).

ULIDs sort by creation time, so event ids order like the log and make good keyset cursors. Within one
millisecond the random part is incremented, keeping ids from one process strictly increasing.
"""

from __future__ import annotations

import base64
import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: RFC 4648 base32 (done in C by base64.b32encode) translated to Crockford's alphabet
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode())
_lock = threading.Lock()
_last_ms = -1
_last_rand = 0


def _encode128(value: int) -> str:
    """26 Crockford base32 characters for a 128-bit value (4 zero bytes pad it to 160 bits)."""
    return base64.b32encode(b"\0\0\0\0" + value.to_bytes(16, "big"))[6:].translate(
        _TO_CROCKFORD).decode()


def ulid() -> str:
    """A 26-character ULID, strictly increasing within this process."""
    global _last_ms, _last_rand
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            now_ms = _last_ms
            _last_rand = (_last_rand + 1) & ((1 << 80) - 1)
        else:
            _last_ms = now_ms
            _last_rand = int.from_bytes(os.urandom(10), "big") >> 1  # headroom for increments
        return _encode128((now_ms << 80) | _last_rand)


def new_id(prefix: str) -> str:
    return f"{prefix}_{ulid()}"


def event_id() -> str:
    return new_id("evt")


def ulid_time_ms(identifier: str) -> int:
    """Milliseconds since the epoch encoded in a (prefixed) ULID."""
    text = identifier.rsplit("_", 1)[-1][:10]
    value = 0
    for ch in text:
        value = value * 32 + _ALPHABET.index(ch)
    return value
