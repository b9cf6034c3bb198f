"""Proof generation round-trips through the RFC 9162 verifiers; tampering is caught."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transparency import rfc9162 as merkle


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(str(i).encode()) for i in range(n)]


def _naive_root(leaves: list[bytes]) -> bytes:
    # MTH exactly as RFC 9162 §2.1.1 writes it, to check the fast path against.
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return merkle.node_hash(_naive_root(leaves[:k]), _naive_root(leaves[k:]))


@given(st.integers(min_value=0, max_value=70))
def test_root_matches_rfc_definition(n: int) -> None:
    assert merkle.root_hash(_leaves(n)) == _naive_root(_leaves(n))


@settings(max_examples=150)
@given(st.integers(min_value=1, max_value=70), st.data())
def test_inclusion_round_trip(n: int, data: st.DataObject) -> None:
    leaves = _leaves(n)
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    proof = merkle.inclusion_proof(index, leaves)
    root = merkle.root_hash(leaves)
    merkle.verify_inclusion(leaves[index], index, n, proof, root)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(merkle.leaf_hash(b"other"), index, n, proof, root)


@settings(max_examples=150)
@given(st.integers(min_value=1, max_value=70), st.data())
def test_consistency_round_trip(n: int, data: st.DataObject) -> None:
    leaves = _leaves(n)
    m = data.draw(st.integers(min_value=1, max_value=n))
    proof = merkle.consistency_proof(m, leaves)
    merkle.verify_consistency(m, n, merkle.root_hash(leaves[:m]), merkle.root_hash(leaves), proof)
    if m < n:
        forged = leaves[: m - 1] + [merkle.leaf_hash(b"x")]
        with pytest.raises(merkle.RootMismatchError):
            merkle.verify_consistency(m, n, merkle.root_hash(forged), merkle.root_hash(leaves), proof)


def test_each_failure_has_its_class() -> None:
    leaves = _leaves(5)
    root = merkle.root_hash(leaves)
    proof = merkle.inclusion_proof(2, leaves)
    with pytest.raises(merkle.IndexOutOfRangeError):
        merkle.verify_inclusion(leaves[2], 5, 5, proof, root)
    with pytest.raises(merkle.ProofLengthError):
        merkle.verify_inclusion(leaves[2], 2, 5, proof[:-1], root)
    with pytest.raises(merkle.MalformedProofError):
        merkle.verify_inclusion(leaves[2], 2, 5, [p[:31] for p in proof], root)
    with pytest.raises(merkle.TreeSizeError):
        merkle.verify_consistency(3, 2, root, root, [])
