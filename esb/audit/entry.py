"""An audit entry and its canonical bytes.

The stored bytes are what the Merkle tree hashes ("hash what is stored"): an entry is encoded
once, as compact JSON with sorted keys, and never re-encoded. Entries hold ids, never request
bodies or personal payload fields, so erasing a data subject (crypto-shredding) has nothing to
rewrite here and never breaks verification.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

#: Version of the entry layout, inside every entry (so a verifier can tell layouts apart).
ENTRY_VERSION = 1


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What the HTTP layer knows about one audited request (before it gets a sequence number)."""

    tenant: str  # '' when the request named no tenant (no or invalid token)
    actor: str  # the token subject, '' when unauthenticated
    request_id: str
    method: str
    operation: str  # the route table's operation id ('unmatched' for unknown routes)
    outcome: int  # HTTP status answered
    target: dict[str, str] = field(default_factory=dict)  # path parameters and created ids
    kind: str = "change"  # change | refused
    time: datetime = field(default_factory=lambda: datetime.now(UTC))


def encode(record: AuditRecord, seq: int) -> bytes:
    """The canonical bytes of ``record`` at position ``seq`` of its tenant's log."""
    body: dict[str, Any] = asdict(record)
    body["time"] = record.time.astimezone(UTC).isoformat(timespec="microseconds")
    body["seq"] = seq
    body["v"] = ENTRY_VERSION
    return json.dumps(body, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def decode(entry: bytes) -> dict[str, Any]:
    """An entry's stored bytes as JSON (for display; verification hashes the bytes)."""
    value: dict[str, Any] = json.loads(entry)
    return value
