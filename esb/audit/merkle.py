"""RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and consistency proofs (section 2.1).

Leaves are hashed as ``SHA-256(0x00 || entry)`` and interior nodes as ``SHA-256(0x01 || l || r)``,
so a leaf can never be passed off as a node (second-preimage resistance). Proofs are generated
from the list of leaf hashes with the recursive definitions of RFC 6962 section 2.1 and checked
with the iterative verification algorithms of RFC 9162 sections 2.1.3.2 and 2.1.4.2, so the two
halves are independent implementations of the same tree. Pure code: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof that does not verify, or a request for a proof that cannot exist."""


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes; iterative, so a million leaves do not recurse."""
    return prefix_roots(leaves, [len(leaves)])[len(leaves)]


def prefix_roots(leaves: Sequence[bytes], sizes: Sequence[int]) -> dict[int, bytes]:
    """MTH(D[0:size]) for each of ``sizes`` (each at most ``len(leaves)``), in one pass."""
    wanted = set(sizes)
    out = {0: EMPTY_ROOT} if 0 in wanted else {}
    # stack of (subtree size, hash); merging equal-sized neighbours gives RFC 6962's shape
    stack: list[tuple[int, bytes]] = []
    for count, leaf in enumerate(leaves, start=1):
        size, digest = 1, leaf
        while stack and stack[-1][0] == size:
            left_size, left = stack.pop()
            size, digest = left_size + size, node_hash(left, digest)
        stack.append((size, digest))
        if count in wanted:
            digest = stack[-1][1]
            for _, left in reversed(stack[:-1]):
                digest = node_hash(left, digest)
            out[count] = digest
    return out


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]): the audit path of leaf ``index`` in the tree over ``leaves``."""
    if not 0 <= index < len(leaves):
        raise ProofError(f"leaf {index} is not in a tree of size {len(leaves)}")
    return _path(index, leaves)


def _path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(m, d[:k]), root(d[k:])]
    return [*_path(m - k, d[k:]), root(d[:k])]


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]): shows the tree of ``old_size`` leaves is a prefix of the one over
    ``leaves``. Empty for ``old_size`` 0 or equal sizes (nothing to prove)."""
    n = len(leaves)
    if not 0 <= old_size <= n:
        raise ProofError(f"cannot prove size {old_size} consistent with size {n}")
    if old_size in (0, n):
        return []
    return _subproof(old_size, leaves, True)


def _subproof(m: int, d: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if complete else [root(d)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, d[:k], complete), root(d[k:])]
    return [*_subproof(m - k, d[k:], False), root(d[:k])]


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes],
                     expected_root: bytes) -> None:
    """RFC 9162 2.1.3.2; raises :class:`ProofError` unless ``leaf`` is at ``index`` of the tree
    of ``size`` leaves whose root is ``expected_root``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    if r != expected_root:
        raise ProofError("inclusion proof does not lead to the expected root")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """RFC 9162 2.1.4.2; raises :class:`ProofError` unless the tree of ``old_size`` with
    ``old_root`` is a prefix of the tree of ``new_size`` with ``new_root``."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"size {old_size} cannot precede size {new_size}")
    if old_size == new_size:
        if proof or old_root != new_root:
            raise ProofError("equal sizes need equal roots and an empty proof")
        return
    if old_size == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than needed")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than needed")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the new root")
