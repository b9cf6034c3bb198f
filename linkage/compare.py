"""Per-field similarities of candidate pairs, from the segments (tsunagu-jp/1) or estimated from diffused views (/2).

Each comparison yields a similarity in [0, 1] or NaN when either record lacks
the field, so a missing field is never read as disagreement. The rules that go
beyond a plain Dice coefficient are here, each with its reason:

* a wrong family/given split: the whole-name segment decides when a split was
  inferred on either side;
* swapped order: family and given share one key, so the cross comparison
  (family A with given B) is available and used when it fits better, or
  when one part was moved to the other field and the other replaced (one
  crossed part agrees, neither straight one does);
* a foreign child registered in alphabet and known by a kanji 通称: the kanji
  comparison is void when the kanji disagree completely while the whole
  reading agrees;
* partial birth dates (year-month only) and abbreviated addresses compare by
  overlap (how much of the shorter one the longer one contains);
* full birth dates are read with the keyed blocking tokens too, which tell
  which parts agree: dates that share no two parts (no year-month, month-day,
  year-day nor transposed token) *contradict* and compare as 0, however many
  single tokens happen to agree (a child born seven years earlier is another
  child, not a typo); a day/month transposition compares as one wrong part.

Under a diffused schema the segments are not available: see
``_compare_chunk_diffused`` below (no swap detection there; each field's
differing bits are fitted from all views by least squares, and the address is
read against typical sizes, a part held on one side only taken off first).
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

#: A full date whose day and month are transposed compares like one with a single wrong part (3 of 4 tokens).
TRANSPOSED = 0.75

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


def _date_detail(fa: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """Per pair, which birth-date parts both records carry (``fa``, ``fb``: their present flags): DATE_FULL, DATE_YEAR_MONTH or DATE_WEAK."""
    shared = fa & fb
    return np.where(
        (shared & _DEMO_PARTS) == _DEMO_PARTS,
        DATE_FULL,
        np.where((shared & _YEAR_MONTH) == _YEAR_MONTH, DATE_YEAR_MONTH, DATE_WEAK),
    ).astype(np.int8)


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
    if not schema.diffused:
        counts_a, counts_b = _segment_counts(a.bits, schema), _segment_counts(b.bits, schema)
    for start in range(0, n, _PAIR_CHUNK):
        sl = slice(start, start + _PAIR_CHUNK)
        if schema.diffused:
            values[sl], detail[sl] = _compare_chunk_diffused(a, ia[sl], b, ib[sl], schema)
        else:
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
        # One part moved to the other field and the other replaced: one crossed part agrees while
        # neither straight one does. Read it crossed, so the part that agrees is counted (and the
        # other one, against the given-name guard, as the given name).
        with np.errstate(invalid="ignore"):
            half = (np.fmax(cross_fg, cross_gf) >= SWAP_MIN) & (np.fmax(fam, giv) < VOID_WRITTEN)
        use_swap |= half
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
    detail = _date_detail(fa, fb)
    demo = _full_dates_by_tokens(demo, detail, a.blocks[ia], b.blocks[ib], schema.blocking_keys)
    ad = idx["address"]
    addr = _overlap(inter[:, ad], pa[:, ad], pb[:, ad])
    return np.column_stack([n_fam, n_giv, k_fam, k_giv, demo, addr]), detail


def _full_dates_by_tokens(demo: np.ndarray, detail: np.ndarray, blocks_a: np.ndarray, blocks_b: np.ndarray,
                          keys: tuple[str, ...]) -> np.ndarray:
    """The date similarity of full-date pairs, corrected by which two-part blocking tokens they share.

    The date segment hashes year, month, day and sex as separate tokens, so
    a Dice over it cannot tell "the year and the day differ" from "the day
    has a typo". The blocking tokens can: equal YM, MD or YD tokens mean
    two parts agree; an equal Y+MD token alone means a day/month
    transposition. Without the two-part keys (another schema) nothing changes.
    """
    col = {k: i for i, k in enumerate(keys)}
    if not {"YM", "MD", "YD"} <= col.keys():
        return demo

    def shared(key: str) -> np.ndarray:
        x, y = blocks_a[:, col[key]], blocks_b[:, col[key]]
        return (x == y) & (x != 0)

    two_parts = shared("YM") | shared("MD") | shared("YD")
    transposed = shared("Y+MD") & ~two_parts if "Y+MD" in col else np.zeros(len(demo), dtype=bool)
    full = detail == DATE_FULL
    demo = np.where(full & transposed, np.fmax(demo, TRANSPOSED), demo)
    return np.where(full & ~two_parts & ~transposed, 0.0, demo)


# --- tsunagu-jp/2: per-field similarities estimated from diffused views ----------------------------
#
# Each view is an XOR diffusion with ``taps`` inputs per output bit. For two
# records whose filters differ in a share p of a view's input bits, an output
# bit differs with probability q = (1 - (1 - 2p)^taps) / 2, so p (and the number
# of differing filter bits, H = p · input length) is estimated from the share of
# differing output bits. Each view's H is the sum of its segments' H, so the
# views together are a linear system in the segments' H, fitted per pair by
# ``_field_estimates`` (how many filter bits each field alone disagrees in). The
# estimate holds only for close records: for strangers q saturates near 1/2
# and the views say nothing about any single field, which is the privacy point
# (docs/privacy.md). Such pairs get "differs" for every field both carry.

#: Given names are read at the upper end of their estimate: this many standard errors more
#: differing bits, so the estimator's noise never lifts twins over the guard (docs/privacy.md).
GIVEN_SE = 2.0

#: Above this share of differing output bits a view is saturated (strangers).
_SATURATED = 0.45
#: Taps of the XOR layer /2 had before its quadratic one: the reference for the saturation point.
_XOR_REFERENCE_TAPS = 3


#: Quadratic layer (``t1 ⊕ … ⊕ t(k) ⊕ (b ⊕ β)(c ⊕ γ) ⊕ δ``, k = taps - 2; each tap differing
#: with probability p, complements uniform over the outputs): the product differs with
#: probability (1 - (1 - p)²)/2, so 1 - 2q = (1 - 2p)^k (1 - p)², increasing q on [0, 1/2];
#: inverted by interpolation on a grid.
_GRID_P = np.linspace(0.0, 0.5, 8193)


def _quadratic_q(p: np.ndarray, taps: int) -> np.ndarray:
    return (1.0 - (1.0 - 2.0 * p) ** (taps - 2) * (1.0 - p) ** 2) / 2.0


def _quadratic_slope(p: np.ndarray, taps: int) -> np.ndarray:
    """dq/dp of :func:`_quadratic_q`."""
    k = taps - 2
    return k * (1.0 - 2.0 * p) ** (k - 1) * (1.0 - p) ** 2 + (1.0 - 2.0 * p) ** k * (1.0 - p)


def _view_estimates(words_a: np.ndarray, words_b: np.ndarray, ia: np.ndarray, ib: np.ndarray, view, taps: int,
                    inputs: int, function: str = "xor"):
    """Differing input bits of ``view`` per pair and the estimate's variance (inf where the view saturates)."""
    n = view.length
    cols = slice(view.offset // 64, (view.offset + n) // 64)
    # Only this view's words are gathered per pair: a pair's whole encoding is 15 views.
    q = np.bitwise_count(words_a[ia, cols] ^ words_b[ib, cols]).sum(axis=1, dtype=np.int32) / n
    # Delta method: var(q) = q(1 - q)/n, floored at one bit, so an exact agreement
    # is not infinitely sure; var(h) = (inputs · dp/dq)² var(q).
    qf = np.maximum(q, 1.0 / n)
    if function == "quadratic":
        p = np.interp(q, _quadratic_q(_GRID_P, taps), _GRID_P)
        h = p * inputs
        var = (inputs / np.maximum(_quadratic_slope(p, taps), 1e-9)) ** 2 * qf * (1.0 - qf) / n
        # Saturated at the share of differing inputs where the earlier XOR layer reached
        # _SATURATED, so fields are read over the same range of closeness as before.
        saturated = p >= _saturated_share(_XOR_REFERENCE_TAPS)
    else:
        base = np.clip(1.0 - 2.0 * q, 1e-9, 1.0)
        h = (1.0 - base ** (1.0 / taps)) / 2.0 * inputs
        # dh/dq = inputs/taps · (1 - 2q)^(1/taps - 1).
        var = (inputs / taps) ** 2 * base ** (2.0 / taps - 2.0) * qf * (1.0 - qf) / n
        saturated = q >= _SATURATED
    return np.where(saturated, np.inf, h), np.where(saturated, np.inf, var)


def _saturated_share(taps: int) -> float:
    """The share of differing inputs at which an XOR layer of ``taps`` differs in :data:`_SATURATED` of its outputs."""
    return (1.0 - (1.0 - 2.0 * _SATURATED) ** (1.0 / taps)) / 2.0


#: Field estimates whose standard error exceeds this many bits are unidentified (treated as differing).
_UNIDENTIFIED_SD = 25.0


def _field_estimates(hs: np.ndarray, vs: np.ndarray, incidence: np.ndarray):
    """Per pair, the differing filter bits of each segment: non-negative weighted least squares over the views.

    ``hs``, ``vs``: P × V view estimates and variances; ``incidence``: V × S (1 where
    the view keeps the segment). Every view is one equation (its differing bits are
    the sum of its segments'), weighted by the inverse of its variance; a saturated
    view weighs nothing. Segments estimated below zero are fixed at zero and the
    rest solved again. Returns the estimates and their standard errors (P × S).
    """
    w = np.where(np.isfinite(vs), 1.0 / np.where(np.isfinite(vs), vs, 1.0), 0.0)
    y = np.where(np.isfinite(hs), hs, 0.0)
    n_seg = incidence.shape[1]
    # Normal equations by two matrix products over all pairs (no per-pair loop):
    # sum_v w_pv M_vs M_vt, and sum_v w_pv y_pv M_vs.
    outer = (incidence[:, :, None] * incidence[:, None, :]).reshape(len(incidence), n_seg * n_seg)
    full_normal = (w @ outer).reshape(len(hs), n_seg, n_seg)
    full_rhs = (w * y) @ incidence
    active = np.ones((len(hs), n_seg), dtype=bool)
    eye = np.eye(n_seg)
    for _ in range(3):
        normal = full_normal * active[:, :, None] * active[:, None, :]
        # A tiny ridge keeps unidentified segments solvable; their variance stays huge.
        ridge = 1e-9 * np.maximum(normal.trace(axis1=1, axis2=2), 1e-9)[:, None, None]
        normal = normal + ridge * eye + (~active)[:, :, None] * eye
        x = np.linalg.solve(normal, (full_rhs * active)[:, :, None])[:, :, 0]
        negative = active & (x < 0)
        if not negative.any():
            break
        active &= ~negative
    x = np.where(active, x, 0.0)
    cov_diag = np.diagonal(np.linalg.inv(normal), axis1=1, axis2=2)
    sd = np.sqrt(np.where(active, np.maximum(cov_diag, 0.0), 0.0))
    return x, sd


def _compare_chunk_diffused(a, ia, b, ib, schema):
    words_a, words_b = (np.ascontiguousarray(e.bits).view(np.uint64) for e in (a, b))
    fa = a.present[ia].astype(np.int64)
    fb = b.present[ib].astype(np.int64)
    seg_bits = {s.name: s.length for s in schema.segments}
    # With a balanced filter every differing filter bit differs twice (bit and complement).
    twice = 2 if schema.balanced else 1
    names = [s.name for s in schema.segments]
    incidence = np.array([[0.0 if s in v.omit else 1.0 for s in names] for v in schema.views])
    hs, vs = [], []
    for v in schema.views:
        inputs = twice * (schema.filter_bits - sum(seg_bits[o] for o in v.omit))
        h, var = _view_estimates(words_a, words_b, ia, ib, v, schema.taps, inputs, schema.function)
        hs.append(h / twice)
        vs.append(var / twice**2)
    hs, vs = np.stack(hs, axis=1), np.stack(vs, axis=1)
    # Every view saturated: the pair is too far apart for any field to be told apart.
    far = ~np.isfinite(hs).any(axis=1)
    estimate, sd = _field_estimates(hs, vs, incidence)
    cfg = schema.document["matching"]
    typical = cfg["typicalBits"]
    tolerance = cfg["agreementTolerance"]

    def field_h(name, se=0.0, explained=0.0):
        # ``explained``: bits that a part held on one side only accounts for, taken off first.
        i = names.index(name)
        # A segment the unsaturated views cannot isolate counts as differing.
        diff = np.where(far | (sd[:, i] > _UNIDENTIFIED_SD), np.inf,
                        np.maximum(estimate[:, i] + se * sd[:, i] - explained, 0.0))
        # Within the estimate's noise of zero means "agrees".
        return np.where(diff <= float(tolerance[name]), 0.0, diff)

    def sim(name, flag_a, flag_b, se=0.0):
        value = 1.0 - field_h(name, se) / (2.0 * typical[name])
        value = np.where(far, 0.0, np.clip(value, 0.0, 1.0))
        return np.where(flag_a & flag_b, value, np.nan)

    def has(flag):
        return ((fa & flag) > 0), ((fb & flag) > 0)

    out = {}
    for prefix, fam_flag, giv_flag, full_flag, inferred_flag in (
        ("name", Present.NAME_FAMILY, Present.NAME_GIVEN, Present.NAME_FULL, Present.NAME_SPLIT_INFERRED),
        ("kana", Present.KANA_FAMILY, Present.KANA_GIVEN, Present.KANA_FULL, Present.KANA_SPLIT_INFERRED),
    ):
        fam = sim(f"{prefix}_family", *has(fam_flag))
        # The given name decides twins: read GIVEN_SE standard errors further apart.
        giv = sim(f"{prefix}_given", *has(giv_flag), se=GIVEN_SE)
        # A split that was guessed (one-field name) is not evidence: the whole name
        # decides, as under /1, where a view without the full-name segment isolates it;
        # else both parts weigh what they show together.
        inferred = ((fa | fb) & inferred_flag) > 0
        if any(f"{prefix}_full" in v.omit for v in schema.views):
            full = sim(f"{prefix}_full", *has(full_flag), se=GIVEN_SE)
        else:
            full = np.where(np.isnan(fam) | np.isnan(giv), np.nan, (fam + giv) / 2.0)
        fam = np.where(inferred & ~np.isnan(full), full, fam)
        giv = np.where(inferred & ~np.isnan(full), full, giv)
        out[prefix] = (fam, giv)
    n_fam, n_giv = out["name"]
    k_fam, k_giv = out["kana"]
    n_fam = np.where((n_fam < VOID_WRITTEN) & (k_fam >= VOID_READING), np.nan, n_fam)
    n_giv = np.where((n_giv < VOID_WRITTEN) & (k_giv >= VOID_READING), np.nan, n_giv)

    # Dates: how many tokens each side holds is known from the presence flags.
    per_part = float(cfg["bitsPerDatePart"])
    demo_a, demo_b = fa & (_DEMO_PARTS | Present.SEX), fb & (_DEMO_PARTS | Present.SEX)
    size_a = np.bitwise_count(demo_a.astype(np.uint64)).astype(float) * per_part
    size_b = np.bitwise_count(demo_b.astype(np.uint64)).astype(float) * per_part
    hd = np.minimum(field_h("demographic"), size_a + size_b)
    inter = (size_a + size_b - hd) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        dice_d = np.where((size_a > 0) & (size_b > 0), 2.0 * inter / np.maximum(size_a + size_b, 1), np.nan)
        over_d = np.where(np.minimum(size_a, size_b) > 0, inter / np.maximum(np.minimum(size_a, size_b), 1), np.nan)
    demo = np.where(demo_a == demo_b, dice_d, over_d)
    demo = np.where(far & ~np.isnan(demo), 0.0, np.clip(demo, 0.0, 1.0))
    detail = _date_detail(fa, fb)
    # Addresses: the sizes are hidden by the diffusion, so the differing bits are read
    # against typical sizes. A part only one side holds (a postal code without the
    # address, as NPO lists have) adds about its typical bits and is taken off first, so
    # the comparison is of what both hold, as /1's containment is.
    postal_bits = float(typical["postal_code"])
    text_bits = float(typical["address"]) - postal_bits
    (pa, pb), (ta, tb) = has(Present.POSTAL_CODE), has(Present.ADDRESS)
    shared = postal_bits * (pa & pb) + text_bits * (ta & tb)
    one_sided = postal_bits * (pa ^ pb) + text_bits * (ta ^ tb)
    addr_diff = field_h("address", explained=one_sided)
    with np.errstate(invalid="ignore", divide="ignore"):
        addr = np.where(shared > 0, np.clip(1.0 - addr_diff / (2.0 * np.maximum(shared, 1.0)), 0.0, 1.0), np.nan)
    addr = np.where(far & ~np.isnan(addr), 0.0, addr)
    return np.column_stack([n_fam, n_giv, k_fam, k_giv, demo, addr]), detail
