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
from linkage.schema import EncodingSchema, load_schema

#: The comparisons the scoring model weighs, in order.
COMPARISONS: tuple[str, ...] = ("name_family", "name_given", "kana_family", "kana_given", "demographic", "address")

_DEMO_PARTS = Present.BIRTH_YEAR | Present.BIRTH_MONTH | Present.BIRTH_DAY
_PAIR_CHUNK = 200_000


@dataclass(slots=True)
class PairSimilarities:
    """Similarities for P pairs: ``values[p, c]`` for comparison ``COMPARISONS[c]`` (NaN = missing).

    ``demographic_complete`` is true where both records have a full birth date.
    """

    values: np.ndarray
    demographic_complete: np.ndarray


def _segment_counts(bits: np.ndarray, schema: EncodingSchema) -> np.ndarray:
    counts = np.bitwise_count(bits)
    starts = [s.byte_slice.start for s in schema.segments]
    return np.add.reduceat(counts, starts, axis=1, dtype=np.int32)


def _dice(inter: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    total = a + b
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2.0 * inter / np.maximum(total, 1), np.nan)


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
    schema = schema or load_schema(a.schema_version)
    if a.schema_version != b.schema_version or a.key_id != b.key_id:
        raise ValueError("encodings under different schemas or linkage keys are never compared")
    n = len(ia)
    values = np.full((n, len(COMPARISONS)), np.nan)
    complete = np.zeros(n, dtype=bool)
    for start in range(0, n, _PAIR_CHUNK):
        sl = slice(start, start + _PAIR_CHUNK)
        values[sl], complete[sl] = _compare_chunk(a, ia[sl], b, ib[sl], schema)
    return PairSimilarities(values, complete)


def _compare_chunk(a, ia, b, ib, schema):
    bits_a, bits_b = a.bits[ia], b.bits[ib]
    fa = a.present[ia].astype(np.int64)
    fb = b.present[ib].astype(np.int64)
    inter = _segment_counts(bits_a & bits_b, schema)
    pa = _segment_counts(bits_a, schema)
    pb = _segment_counts(bits_b, schema)
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
        straight = np.fmin(fam, giv)
        swapped = np.fmin(cross_fg, cross_gf)
        use_swap = swapped > straight
        fam = np.where(use_swap, cross_fg, fam)
        giv = np.where(use_swap, cross_gf, giv)
        inferred = ((fa | fb) & inferred_flag) > 0
        lacks_part = np.isnan(fam) | np.isnan(giv)
        trust_full = (inferred | lacks_part) & (full >= 0.8)
        fam = np.where(trust_full, np.fmax(fam, full), fam)
        giv = np.where(trust_full, np.fmax(giv, full), giv)
        return fam, giv, full

    n_fam, n_giv, n_full = parts("name", Present.NAME_SPLIT_INFERRED)
    k_fam, k_giv, k_full = parts("kana", Present.KANA_SPLIT_INFERRED)
    # Alphabet name on one side, kanji 通称 on the other: the kanji say nothing.
    void = (n_full < 0.2) & (k_full >= 0.9) & (np.nan_to_num(k_giv) >= 0.9)
    n_fam = np.where(void, np.nan, n_fam)
    n_giv = np.where(void, np.nan, n_giv)

    d = idx["demographic"]
    demo_a, demo_b = fa & (_DEMO_PARTS | Present.SEX), fb & (_DEMO_PARTS | Present.SEX)
    same_parts = demo_a == demo_b
    demo = np.where(
        same_parts, _dice(inter[:, d], pa[:, d], pb[:, d]), _overlap(inter[:, d], pa[:, d], pb[:, d])
    )
    complete = ((fa & _DEMO_PARTS) == _DEMO_PARTS) & ((fb & _DEMO_PARTS) == _DEMO_PARTS)
    ad = idx["address"]
    addr = _overlap(inter[:, ad], pa[:, ad], pb[:, ad])
    return np.column_stack([n_fam, n_giv, k_fam, k_giv, demo, addr]), complete
