"""RFC 6962 Merkle hashing and proofs: the published test vectors (certificate-transparency's
reference data), and property tests against an independent, literal transcription of RFC 6962
section 2.1's recursive definitions."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esb.audit import merkle

# certificate-transparency-go/merkle testdata: eight leaves, and the roots of each prefix
LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243",
                                     "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = [  # (leaf index, tree size, audit path)
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
CONSISTENCY = [  # (old size, new size, proof)
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
HASHES = [merkle.leaf_hash(leaf) for leaf in LEAVES]


# --- an independent reference: RFC 6962 section 2.1, transcribed literally -----------------

def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def ref_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return _h(b"")
    if n == 1:
        return _h(b"\x00" + d[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return _h(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


# --- published vectors ----------------------------------------------------------------------

def test_hashing_is_domain_separated() -> None:
    assert merkle.leaf_hash(b"x") == _h(b"\x00x")
    assert merkle.node_hash(b"l", b"r") == _h(b"\x01lr")
    assert merkle.leaf_hash(b"\x01ab") != merkle.node_hash(b"a", b"b")


@pytest.mark.parametrize("size", range(len(ROOTS)))
def test_roots_match_published_vectors(size: int) -> None:
    assert merkle.root(HASHES[:size]).hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_proofs_match_published_vectors(index: int, size: int, path: list[str]) -> None:
    proof = merkle.inclusion_proof(index, HASHES[:size])
    assert [p.hex() for p in proof] == path
    merkle.verify_inclusion(index, size, HASHES[index], proof, bytes.fromhex(ROOTS[size]))


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_consistency_proofs_match_published_vectors(old: int, new: int, path: list[str]) -> None:
    proof = merkle.consistency_proof(old, HASHES[:new])
    assert [p.hex() for p in proof] == path
    merkle.verify_consistency(old, new, bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new]),
                              proof)


def test_prefix_roots_in_one_pass() -> None:
    got = merkle.prefix_roots(HASHES, [0, 1, 3, 8])
    assert {k: v.hex() for k, v in got.items()} == {s: ROOTS[s] for s in (0, 1, 3, 8)}


# --- properties against the reference ------------------------------------------------------

entries = st.lists(st.binary(max_size=8), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(entries, st.data())
def test_inclusion_agrees_with_rfc_and_rejects_tampering(leaves: list[bytes],
                                                         data: st.DataObject) -> None:
    hashes = [merkle.leaf_hash(x) for x in leaves]
    index = data.draw(st.integers(0, len(leaves) - 1))
    root = ref_mth(leaves)
    assert merkle.root(hashes) == root
    proof = merkle.inclusion_proof(index, hashes)
    assert proof == ref_path(index, leaves)
    merkle.verify_inclusion(index, len(leaves), hashes[index], proof, root)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(index, len(leaves), merkle.leaf_hash(leaves[index] + b"!"),
                                proof, root)
    if len(leaves) > 1:
        other = (index + 1) % len(leaves)
        if hashes[other] != hashes[index]:
            with pytest.raises(merkle.ProofError):
                merkle.verify_inclusion(other, len(leaves), hashes[index], proof, root)
    if proof:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(index, len(leaves), hashes[index], proof[:-1], root)


@settings(max_examples=150, deadline=None)
@given(entries, st.data())
def test_consistency_agrees_with_rfc_and_rejects_rewritten_history(
        leaves: list[bytes], data: st.DataObject) -> None:
    hashes = [merkle.leaf_hash(x) for x in leaves]
    n = len(leaves)
    m = data.draw(st.integers(1, n))
    proof = merkle.consistency_proof(m, hashes)
    assert proof == ([] if m == n else ref_subproof(m, leaves, True))
    old_root, new_root = ref_mth(leaves[:m]), ref_mth(leaves)
    merkle.verify_consistency(m, n, old_root, new_root, proof)
    # the old tree with one entry changed is not a prefix of the new one
    changed = leaves[:m]
    changed[data.draw(st.integers(0, m - 1))] += b"!"
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(m, n, ref_mth(changed), new_root, proof)


def test_impossible_proofs_are_refused() -> None:
    with pytest.raises(merkle.ProofError):
        merkle.inclusion_proof(8, HASHES)
    with pytest.raises(merkle.ProofError):
        merkle.consistency_proof(9, HASHES)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(8, 8, HASHES[0], [], bytes.fromhex(ROOTS[8]))
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(3, 8, bytes.fromhex(ROOTS[3]), bytes.fromhex(ROOTS[8]), [])
