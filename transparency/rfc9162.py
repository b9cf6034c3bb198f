"""Merkle tree hashing, proofs and proof verification as in RFC 9162 (Certificate Transparency 2.0).

- Leaf hash ``SHA-256(0x00 || data)``, interior node ``SHA-256(0x01 || left || right)`` (§2.1.1).
- Inclusion proofs: generation as PATH (§2.1.3.1), verification exactly as §2.1.3.2.
- Consistency proofs: generation as PROOF/SUBPROOF (§2.1.4.1), verification as §2.1.4.2.

Proof generation is written over *ranges*: a proof is a list of subtree
hashes MTH(D[start:end]), and each such range is either a perfect, aligned
subtree or the right edge of one, so a store that keeps the hashes of perfect
subtrees (see :func:`perfect_subtrees`) answers any proof with O(log n)
lookups. Each way verification can fail has its own exception class.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

from keys.errors import KeysError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(KeysError):
    """A Merkle proof does not verify."""


class MalformedProofError(ProofError):
    """A proof element is not a SHA-256 hash (wrong length)."""


class IndexOutOfRangeError(ProofError):
    """The leaf index is not inside the tree (RFC 9162 §2.1.3.2 step 1)."""


class TreeSizeError(ProofError):
    """The tree sizes are impossible (e.g. the old tree is bigger than the new one, or empty)."""


class ProofLengthError(ProofError):
    """The proof has too many or too few elements for the claimed sizes."""


class RootMismatchError(ProofError):
    """The proof leads to a root other than the claimed one."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_hash(leaves: Sequence[bytes]) -> bytes:
    """MTH over a list of leaf hashes (an empty tree hashes to SHA-256 of nothing)."""
    if not leaves:
        return EMPTY_ROOT
    return fold_right([_mth_perfect(leaves, start, level) for level, start in _decompose(0, len(leaves))])


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """Combine the perfect subtrees of a range, largest first, into the range's MTH."""
    result = hashes[-1]
    for h in reversed(hashes[:-1]):
        result = node_hash(h, result)
    return result


def perfect_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """The perfect subtrees ``(level, index)`` whose fold is MTH(D[start:end]).

    ``start`` must be aligned to a power of two at least ``end - start`` (true
    of every range a proof needs). Node ``(level, index)`` covers leaves
    ``index * 2**level`` to ``(index + 1) * 2**level``.
    """
    return [(level, offset >> level) for level, offset in _decompose(start, end)]


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The ranges whose MTHs form PATH(index, D[0:size]) (RFC 9162 §2.1.3.1), leaf side first."""
    if not 0 <= index < size:
        raise IndexOutOfRangeError(f"葉の位置 {index} は木の大きさ {size} の範囲外です。")
    return _path(index, 0, size)


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The ranges whose MTHs form PROOF(old_size, D[0:new_size]) (RFC 9162 §2.1.4.1)."""
    if not 0 < old_size <= new_size:
        raise TreeSizeError(f"一貫性証明には 0 < 旧サイズ ≤ 新サイズ が必要です（{old_size}、{new_size}）。")
    return _subproof(old_size, 0, new_size, True)


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """An inclusion proof for leaf ``index`` over in-memory leaf hashes."""
    return [_range_hash(leaves, s, e) for s, e in inclusion_ranges(index, len(leaves))]


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """A consistency proof from the first ``old_size`` leaves to all of ``leaves``."""
    return [_range_hash(leaves, s, e) for s, e in consistency_ranges(old_size, len(leaves))]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2: check that ``leaf`` (a leaf hash) sits at ``index`` in the tree ``root`` of ``size``."""
    _check_elements([leaf, root, *proof])
    if not 0 <= index < size:
        raise IndexOutOfRangeError(f"葉の位置 {index} は木の大きさ {size} の範囲外です。")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofLengthError(f"包含証明の要素が多すぎます（{len(proof)} 個）。")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofLengthError(f"包含証明の要素が足りません（{len(proof)} 個）。")
    if r != root:
        raise RootMismatchError("包含証明から計算した根ハッシュが、示された根ハッシュと一致しません。")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes] | None
) -> None:
    """RFC 9162 §2.1.4.2: check that the tree ``old_root`` of ``old_size`` is a prefix of ``new_root``.

    Equal sizes need an empty proof and equal roots; an empty old tree proves
    nothing and is refused.
    """
    proof = list(proof or [])
    _check_elements(proof)
    if old_size < 1 or new_size < old_size:
        raise TreeSizeError(f"一貫性証明には 0 < 旧サイズ ≤ 新サイズ が必要です（{old_size}、{new_size}）。")
    if old_size == new_size:
        if proof:
            raise ProofLengthError("木の大きさが同じなら一貫性証明は空でなければなりません。")
        if old_root != new_root:
            raise RootMismatchError(f"大きさ {old_size} の二つの根ハッシュが異なります。")
        return
    if not proof:
        raise ProofLengthError("一貫性証明が空です。")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofLengthError(f"一貫性証明の要素が多すぎます（{len(proof)} 個）。")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofLengthError(f"一貫性証明の要素が足りません（{len(proof)} 個）。")
    if fr != old_root:
        raise RootMismatchError(f"一貫性証明から計算した旧い木（大きさ {old_size}）の根ハッシュが一致しません。")
    if sr != new_root:
        raise RootMismatchError(f"一貫性証明から計算した新しい木（大きさ {new_size}）の根ハッシュが一致しません。")


def _check_elements(hashes: Sequence[bytes]) -> None:
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise MalformedProofError(f"証明のハッシュ値が {len(h)} バイトで、SHA-256（32 バイト）ではありません。")


def _largest_power_below(n: int) -> int:
    # The k of RFC 9162: the largest power of two strictly smaller than n (n > 1).
    return 1 << ((n - 1).bit_length() - 1)


def _path(m: int, start: int, end: int) -> list[tuple[int, int]]:
    n = end - start
    if n == 1:
        return []
    k = _largest_power_below(n)
    if m < k:
        return _path(m, start, start + k) + [(start + k, end)]
    return _path(m - k, start + k, end) + [(start, start + k)]


def _subproof(m: int, start: int, end: int, complete: bool) -> list[tuple[int, int]]:
    n = end - start
    if m == n:
        return [] if complete else [(start, end)]
    k = _largest_power_below(n)
    if m <= k:
        return _subproof(m, start, start + k, complete) + [(start + k, end)]
    return _subproof(m - k, start + k, end, False) + [(start, start + k)]


def _decompose(start: int, end: int) -> list[tuple[int, int]]:
    # Binary digits of the range size, largest first: (level, first leaf) of each perfect subtree.
    out, offset, size = [], start, end - start
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, offset))
            offset += 1 << level
    return out


def _mth_perfect(leaves: Sequence[bytes], start: int, level: int) -> bytes:
    layer = list(leaves[start : start + (1 << level)])
    while len(layer) > 1:
        layer = [node_hash(layer[i], layer[i + 1]) for i in range(0, len(layer), 2)]
    return layer[0]


def _range_hash(leaves: Sequence[bytes], start: int, end: int) -> bytes:
    return fold_right([_mth_perfect(leaves, s, level) for level, s in _decompose(start, end)])

