"""Per-field similarities of candidate pairs, computed from the segments of their encodings.

Each comparison yields a similarity in [0, 1] or NaN when either record lacks
the field, so a missing field is never read as disagreement. The rules that go
beyond a plain Dice coefficient are here, each with its reason:

* a wrong family/given split: the whole-name segment decides when a split was
  inferred on either side;
* swapped order: family and given share one key, so the cross comparison
  (family A with given B) is available and used when it fits better;
* a foreign child registered in alphabet and known by a kanji 通称: the kanji
  comparison is void when the kanji disagree completely while the whole
  reading agrees;
* partial birth dates (year-month only) and abbreviated addresses compare by
  overlap (how much of the shorter one the longer one contains).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from linkage.encode import Encodings, Present
from linkage.schema import EncodingSchema

#: The comparisons the scoring model weighs, in order.
COMPARISONS: tuple[str, ...] = ("name_family", "name_given", "kana_family", "kana_given", "demographic", "address")

_DEMO_PARTS = Present.BIRTH_YEAR | Present.BIRTH_MONTH | Present.BIRTH_DAY
_YEAR_MONTH = Present.BIRTH_YEAR | Present.BIRTH_MONTH

#: Swapped family/given order is used only when both crossed parts agree this well.
SWAP_MIN = 0.7
#: Written name below VOID_WRITTEN while the reading is at least VOID_READING: void.
VOID_WRITTEN = 0.45
VOID_READING = 0.9

#: What both records' birth dates have in common (``PairSimilarities.date_detail``).
DATE_WEAK, DATE_YEAR_MONTH, DATE_FULL = 0, 1, 2
_PAIR_CHUNK = 200_000


@dataclass(slots=True)
class PairSimilarities:
    """Similarities for P pairs: ``values[p, c]`` for comparison ``COMPARISONS[c]`` (NaN = missing).

    ``date_detail`` says which birth-date parts both records have: DATE_FULL
    (year, month, day), DATE_YEAR_MONTH, or DATE_WEAK (year or sex only).
    """

    values: np.ndarray
    date_detail: np.ndarray


def _segment_counts(bits: np.ndarray, schema: EncodingSchema) -> np.ndarray:
    counts = np.bitwise_count(bits)
    starts = [s.byte_slice.start for s in schema.segments]
    return np.add.reduceat(counts, starts, axis=1, dtype=np.int32)


def _dice(inter: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # An empty filter on either side means the field is missing there: NaN, not 0.
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((a > 0) & (b > 0), 2.0 * inter / np.maximum(a + b, 1), np.nan)


def _overlap(inter: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    low = np.minimum(a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(low > 0, inter / np.maximum(low, 1), np.nan)


def _cross(bits_a: np.ndarray, bits_b: np.ndarray, seg_a: slice, seg_b: slice) -> np.ndarray:
    return np.bitwise_count(bits_a[:, seg_a] & bits_b[:, seg_b]).sum(axis=1, dtype=np.int32)


def compare_pairs(
    a: Encodings, ia: np.ndarray, b: Encodings, ib: np.ndarray, schema: EncodingSchema | None = None
) -> PairSimilarities:
    """Similarities of the pairs (a[ia[p]], b[ib[p]])."""
    schema = schema or a.schema
    if a.schema_version != b.schema_version or a.key_id != b.key_id:
        raise ValueError("encodings under different schemas or linkage keys are never compared")
    n = len(ia)
    values = np.full((n, len(COMPARISONS)), np.nan)
    detail = np.zeros(n, dtype=np.int8)
    # Popcounts per record and segment, once per batch rather than once per pair.
    counts_a, counts_b = _segment_counts(a.bits, schema), _segment_counts(b.bits, schema)
    for start in range(0, n, _PAIR_CHUNK):
        sl = slice(start, start + _PAIR_CHUNK)
        values[sl], detail[sl] = _compare_chunk(a, ia[sl], b, ib[sl], schema, counts_a[ia[sl]], counts_b[ib[sl]])
    return PairSimilarities(values, detail)


def _compare_chunk(a, ia, b, ib, schema, pa, pb):
    bits_a, bits_b = a.bits[ia], b.bits[ib]
    fa = a.present[ia].astype(np.int64)
    fb = b.present[ib].astype(np.int64)
    inter = _segment_counts(bits_a & bits_b, schema)
    idx = {s.name: i for i, s in enumerate(schema.segments)}
    seg = {s.name: s.byte_slice for s in schema.segments}

    def dice(name):
        i = idx[name]
        return _dice(inter[:, i], pa[:, i], pb[:, i])

    def parts(prefix, inferred_flag):
        fam, giv, full = dice(f"{prefix}_family"), dice(f"{prefix}_given"), dice(f"{prefix}_full")
        f_i, g_i = idx[f"{prefix}_family"], idx[f"{prefix}_given"]
        cross_fg = _dice(_cross(bits_a, bits_b, seg[f"{prefix}_family"], seg[f"{prefix}_given"]), pa[:, f_i], pb[:, g_i])
        cross_gf = _dice(_cross(bits_a, bits_b, seg[f"{prefix}_given"], seg[f"{prefix}_family"]), pa[:, g_i], pb[:, f_i])
        swapped = np.minimum(cross_fg, cross_gf)
        use_swap = (swapped >= SWAP_MIN) & (swapped > np.minimum(fam, giv))
        fam = np.where(use_swap, cross_fg, fam)
        giv = np.where(use_swap, cross_gf, giv)
        # A split that was guessed (one-field name) is not evidence: the whole name decides.
        inferred = ((fa | fb) & inferred_flag) > 0
        fam = np.where(inferred & ~np.isnan(full), full, fam)
        giv = np.where(inferred & ~np.isnan(full), full, giv)
        return fam, giv, full

    n_fam, n_giv, n_full = parts("name", Present.NAME_SPLIT_INFERRED)
    k_fam, k_giv, k_full = parts("kana", Present.KANA_SPLIT_INFERRED)
    # Same reading, nothing shared in writing: an alphabet name against a 通称
    # or katakana. The written form says nothing then, for that part.
    n_fam = np.where((n_fam < VOID_WRITTEN) & (k_fam >= VOID_READING), np.nan, n_fam)
    n_giv = np.where((n_giv < VOID_WRITTEN) & (k_giv >= VOID_READING), np.nan, n_giv)

    d = idx["demographic"]
    demo_a, demo_b = fa & (_DEMO_PARTS | Present.SEX), fb & (_DEMO_PARTS | Present.SEX)
    same_parts = demo_a == demo_b
    demo = np.where(
        same_parts, _dice(inter[:, d], pa[:, d], pb[:, d]), _overlap(inter[:, d], pa[:, d], pb[:, d])
    )
    shared = fa & fb
    detail = np.where(
        (shared & _DEMO_PARTS) == _DEMO_PARTS,
        DATE_FULL,
        np.where((shared & _YEAR_MONTH) == _YEAR_MONTH, DATE_YEAR_MONTH, DATE_WEAK),
    ).astype(np.int8)
    ad = idx["address"]
    addr = _overlap(inter[:, ad], pa[:, ad], pb[:, ad])
    return np.column_stack([n_fam, n_giv, k_fam, k_giv, demo, addr]), detail
