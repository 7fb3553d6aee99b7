"""Verification of stored audit logs against their signed checkpoints (``esb audit verify``).

Trusts nothing in the database but the signatures: every leaf hash is recomputed from the stored
entry bytes, every checkpoint's signature is checked with a public key given by the operator,
and each signed root is recomputed from the entries it covers. One altered entry changes its
leaf; one deleted entry leaves a gap (or a log shorter than a signed size); one reordered entry
sits at a position its own bytes do not name; any of them changes every later signed root.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from esb.audit import merkle
from esb.audit.checkpoints import Checkpoint, check_signature
from esb.audit.entry import decode
from esb.audit.log import StoredEntry


@dataclass
class LogReport:
    """What verification found for one tenant's log."""

    log: str
    entries: int
    signed_size: int = 0  # entries covered by the latest valid checkpoint
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, object]:
        return {"log": self.log, "ok": self.ok, "entries": self.entries,
                "signed_size": self.signed_size, "problems": self.problems,
                "warnings": self.warnings}


def verify_log(log: str, entries: Sequence[StoredEntry], checkpoints: Sequence[Checkpoint],
               public: Ed25519PublicKey) -> LogReport:
    """Check one log's entries (ordered by seq) against its checkpoints (any order)."""
    name = repr(log) if log else "'' (unattributed)"
    report = LogReport(log, len(entries))
    leaves = _check_entries(name, entries, report)
    valid: list[Checkpoint] = []
    for cp in sorted(checkpoints, key=lambda c: c.tree_size):
        if cp.log != log or not check_signature(cp, public):
            report.problems.append(f"log {name}: checkpoint of size {cp.tree_size} does not "
                                   "carry a valid signature by this key (forged or altered "
                                   "checkpoint, or the wrong public key)")
        elif cp.tree_size > len(leaves):
            report.problems.append(
                f"log {name}: a signed checkpoint covers {cp.tree_size} entries but only "
                f"{len(leaves)} are stored: entries were deleted")
        else:
            valid.append(cp)
    roots = merkle.prefix_roots(leaves, [cp.tree_size for cp in valid])
    good = 0
    for cp in valid:
        if roots[cp.tree_size] != cp.root:
            report.problems.append(
                f"log {name}: entries 0..{cp.tree_size - 1} do not hash to the root signed at "
                f"{cp.signed_at.isoformat()} (size {cp.tree_size}): an entry after seq "
                f"{good - 1} and at most seq {cp.tree_size - 1} was altered, deleted or "
                "reordered")
            break
        good = cp.tree_size
    report.signed_size = good
    if not valid and entries:
        report.warnings.append(f"log {name}: no signed checkpoint yet; {len(entries)} "
                               "entries cannot be verified")
    elif len(entries) > good and report.ok:
        report.warnings.append(f"log {name}: {len(entries) - good} entries after the latest "
                               "checkpoint are not signed yet")
    return report


def _check_entries(name: str, entries: Sequence[StoredEntry], report: LogReport
                   ) -> list[bytes]:
    """Leaf hashes recomputed from the bytes; positions and stored hashes checked on the way."""
    leaves: list[bytes] = []
    for position, stored in enumerate(entries):
        if stored.seq != position and not report.problems:
            report.problems.append(f"log {name}: entry seq {position} is missing (the next "
                                   f"stored entry is seq {stored.seq}): an entry was deleted")
        leaf = merkle.leaf_hash(stored.entry)
        if leaf != stored.leaf_hash:
            report.problems.append(f"log {name}: entry seq {stored.seq} does not match its "
                                   "recorded leaf hash: the entry was altered")
        try:
            written = decode(stored.entry).get("seq")
        except ValueError:
            written = None
        if written != stored.seq:
            report.problems.append(f"log {name}: entry stored at seq {stored.seq} was written "
                                   f"as seq {written}: entries were reordered or altered")
        leaves.append(leaf)
    return leaves
