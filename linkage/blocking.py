"""Multi-pass blocking: which record pairs are compared at all.

Passes, each reported with how many pairs it compares and finds
(``PassStats``: reduction ratio and, where the truth is known, pair
completeness):

* **keyed blocks** — the keyed blocking tokens every encoding carries
  (``Encodings.blocks``, one token per blocking key; 0 = none). Records that
  share a token of the same key are compared. Cheap and precise, but a
  record whose date is wrong in two parts shares no block with its twin in
  another department.
* **large keyed blocks split by name** (``SplitConfig``, schemas with
  separate full-name segments) — a block of more than ``max_block`` records
  is compared only between records that also share a bit sample of their
  written or read full name, and a record without any token (no usable
  birth date) meets the records that share a longer sample of its name
  rather than every record of the other sources. Without this, a block's
  pairs grow with the square of the births per month, so the whole run
  with the square of the town.
* **Hamming LSH** — λ-fold bit-sampling LSH on the encodings themselves (the
  scheme of Karapiperis & Verykios that blocklib calls λ-fold LSH): each of
  ``bands`` tables samples ``bits_per_band`` bit positions, and records whose
  sampled bits are all equal share that table's block. Two encodings that
  differ in a share h of their bits collide in one table with probability
  (1 − h)^k, so near-identical encodings meet in some table whatever their
  dates say. It reads nothing but a packed bit array, so it works on any
  bit-array encoding: positions are drawn from the *informative* bits (set in
  between ``min_share`` and ``max_share`` of the records), which leaves out
  segments that are empty everywhere (a source without readings) and would
  otherwise put every record into one block. Blocks larger than ``max_block``
  records are dropped: a key that common says nothing.

A diffused schema (``tsunagu-jp/2``) has neither name segments nor date
tokens finer than the year: its passes are **nearest in birth-year blocks**
and **view LSH** (:class:`ViewBlockingConfig`, :func:`diffused_candidates`),
both computed from the stored views and year tokens only.

Pairs come out as one int64 per pair (``pair_key``): the global record
numbers of both sides, smaller first. The hot loops are numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

#: One int64 per pair: (global number of the first record) * SPAN + global number of the second.
SPAN = np.int64(1 << 31)


@dataclass(frozen=True, slots=True)
class LshConfig:
    """Parameters of the Hamming LSH pass (measured: docs/linkage-at-scale.md)."""

    bands: int = 60
    bits_per_band: int = 16
    seed: int = 20250
    max_block: int = 100
    min_ones: int = 5
    min_share: float = 0.02
    max_share: float = 0.98


@dataclass(slots=True)
class PassStats:
    """What one blocking pass did: pairs it compared, and the candidate pairs it found."""

    name: str
    compared: int = 0
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def candidates(self) -> int:
        """Candidate pairs this pass found (after the first-stage filter)."""
        return int(len(self.keys))

    def reduction_ratio(self, total_pairs: int) -> float:
        """1 − compared / all cross-source pairs."""
        return 1.0 - self.compared / total_pairs if total_pairs else 1.0

    def pair_completeness(self, true_keys: np.ndarray) -> float:
        """Share of the true pairs (``pair_key`` form) this pass found."""
        if not len(true_keys):
            return 1.0
        return float(np.isin(true_keys, self.keys).mean())


def unique_sorted(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (a sort and a mask: numpy's hash-based ``unique`` is far slower on int64 keys)."""
    values = np.sort(values, kind="stable")
    if not len(values):
        return values
    return values[np.r_[True, values[1:] != values[:-1]]]


def offsets_of(sizes: Sequence[int]) -> np.ndarray:
    """Global record number of each source's first record (and the total at the end)."""
    offsets = np.cumsum([0, *sizes]).astype(np.int64)
    if offsets[-1] >= SPAN:
        raise ValueError(f"too many records for one linkage run ({offsets[-1]:,})")
    return offsets


def pair_key(global_a: np.ndarray, global_b: np.ndarray) -> np.ndarray:
    """One int64 per unordered pair of global record numbers."""
    lo, hi = np.minimum(global_a, global_b), np.maximum(global_a, global_b)
    return lo.astype(np.int64) * SPAN + hi.astype(np.int64)


def split_keys(keys: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(source_a, index_a, source_b, index_b) of pair keys; source_a < source_b for cross-source pairs."""
    ga, gb = keys // SPAN, keys % SPAN
    sa = np.searchsorted(offsets, ga, side="right") - 1
    sb = np.searchsorted(offsets, gb, side="right") - 1
    return sa.astype(np.int32), ga - offsets[sa], sb.astype(np.int32), gb - offsets[sb]


# --- keyed blocks -------------------------------------------------------------------------------


def keyed_blocks(blocks: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """Record indices per (blocking key, token) of one source."""
    out: dict[tuple[int, int], np.ndarray] = {}
    for k in range(blocks.shape[1]):
        col = blocks[:, k]
        idx = np.flatnonzero(col)
        order = idx[np.argsort(col[idx], kind="stable")]
        values = col[order]
        cuts = np.flatnonzero(values[1:] != values[:-1]) + 1
        for chunk in np.split(order, cuts):
            if len(chunk):
                out[(k, int(col[chunk[0]]))] = chunk
    return out


@dataclass(frozen=True, slots=True)
class SplitConfig:
    """Keyed blocks too large to compare whole, split by name (measured: docs/linkage-at-scale.md).

    A block (one token of one key) holding more than ``max_block`` records
    over all sources is not compared whole: its records meet only when they
    also share one of ``bands`` bit samples (``bits_per_band`` bits each) of
    their written or read full-name segment. Below that size nothing
    changes, so a town keeps its blocks; above it, the pairs a block
    compares grow with the births per month times the share of near-equal
    names instead of with the square of the births per month.
    """

    max_block: int = 150
    bands: int = 4
    bits_per_band: int = 10
    seed: int = 20252
    #: Split blocks larger than this are dropped (a pathological run of equal samples).
    max_sub_block: int = 2000
    #: A record without any birth-date token meets the records that share one of these samples
    #: of a full-name segment (longer: its block is the whole run, not a birth month).
    undated_bits_per_band: int = 20


def name_segments(schema) -> list[slice]:
    """Byte slices of the full-name segments (written, read) a large block is split by.

    [] for a diffused schema (tsunagu-jp/2), whose segments are not separate
    fields (docs/privacy.md): its blocks are not split.
    """
    if schema.diffused:
        return []
    names = {seg.name for seg in schema.segments}
    return [schema.segment(n).byte_slice for n in ("name_full", "kana_full") if n in names]


def large_tokens(blocks: Sequence[np.ndarray], max_block: int) -> list[np.ndarray]:
    """Per blocking key, the sorted tokens whose block holds more than ``max_block`` records (all sources)."""
    out = []
    for k in range(blocks[0].shape[1] if blocks else 0):
        col = np.concatenate([b[:, k] for b in blocks])
        values, counts = np.unique(col[col != 0], return_counts=True)
        out.append(values[counts > max_block])
    return out


def keyed_tasks(blocks: Sequence[np.ndarray],
                large: Sequence[np.ndarray] | None = None) -> tuple[list[tuple[int, np.ndarray, int, np.ndarray]], int]:
    """Block pairs to compare across sources, (s, rows_s, t, rows_t) with s < t, and the pairs they hold.

    Records without any token meet every record of the other source (unless
    ``large`` is given: then the caller finds their pairs by name,
    :func:`undated_pairs`). A pair that shares several blocks is counted in
    each (the caller deduplicates). Blocks whose token is in ``large`` (per
    key, sorted) are left out: the caller splits them (:func:`split_block_pairs`).
    """
    per_source = [keyed_blocks(b) for b in blocks]
    wild = [np.flatnonzero(~(b != 0).any(axis=1)) for b in blocks]
    sizes = [len(b) for b in blocks]
    skip = {(k, int(v)) for k, values in enumerate(large or []) for v in values.tolist()}
    tasks: list[tuple[int, np.ndarray, int, np.ndarray]] = []
    for s in range(len(blocks)):
        for t in range(s + 1, len(blocks)):
            for key, rows_s in per_source[s].items():
                rows_t = per_source[t].get(key)
                if rows_t is not None and key not in skip:
                    tasks.append((s, rows_s, t, rows_t))
            if large is None and len(wild[s]):
                tasks.append((s, wild[s], t, np.arange(sizes[t])))
            if large is None and len(wild[t]):
                tasks.append((s, np.setdiff1d(np.arange(sizes[s]), wild[s]), t, wild[t]))
    compared = sum(len(a) * len(b) for _, a, _, b in tasks)
    return tasks, compared


def split_positions(segments: Sequence[slice], n_keys: int, config: SplitConfig, bits_per_band: int | None = None) -> np.ndarray:
    """(keys, segments, bands, bits_per_band) bit positions (row coordinates) inside each full-name segment.

    Fixed by the seed, not drawn from the data: a record's name samples
    stay the same from run to run (incremental runs split as full runs do).
    """
    k_bits = bits_per_band or config.bits_per_band
    out = np.zeros((n_keys, len(segments), config.bands, k_bits), dtype=np.int64)
    for k in range(n_keys):
        for f, seg in enumerate(segments):
            rng = np.random.default_rng([config.seed, k, f, k_bits])
            width = (seg.stop - seg.start) * 8
            for b in range(config.bands):
                out[k, f, b] = seg.start * 8 + rng.choice(width, size=min(k_bits, width), replace=False)
    return out


def undated_pairs(blocks: Sequence[np.ndarray], bits: Sequence[np.ndarray], segments: Sequence[slice],
                  config: SplitConfig, changed: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """(pair keys, pairs compared): a record without any birth-date token and the records of other sources
    that share one of its longer full-name samples (``undated_bits_per_band`` bits).

    ``changed``: as in :func:`split_block_pairs`.
    """
    sizes = [len(b) for b in blocks]
    offsets_of(sizes)
    undated = np.concatenate([~(b != 0).any(axis=1) for b in blocks]) if blocks else np.zeros(0, dtype=bool)
    if not segments or not undated.any():
        return np.zeros(0, dtype=np.int64), 0
    source = np.concatenate([np.full(n, s, dtype=np.int32) for s, n in enumerate(sizes)])
    positions = split_positions(segments, 1, config, config.undated_bits_per_band)[0]
    found, compared = [np.zeros(0, dtype=np.int64)], 0
    for f, seg in enumerate(segments):
        present = np.concatenate([b[:, seg].any(axis=1) for b in bits])
        for b in range(config.bands):
            sample = np.concatenate([band_keys(x, positions[f, b][None, :])[:, 0] for x in bits])
            column = np.where(present & (sample != 0), mix(sample, np.full(len(sample), f * 64 + b)), np.uint64(0))
            rows = np.flatnonzero(column)
            # Only blocks that hold an undated record, only pairs with an undated end.
            rows = rows[np.isin(column[rows], column[rows[undated[rows]]])]
            pairs, n = _pairs_within_blocks(column[rows], source[rows], config.max_sub_block)
            pairs = _to_global(pairs, rows)
            ends = undated if changed is None else changed
            keep = (undated[pairs // SPAN] | undated[pairs % SPAN]) & (ends[pairs // SPAN] | ends[pairs % SPAN])
            found.append(pairs[keep])
            compared += n
    return unique_sorted(np.concatenate(found)), compared


_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def mix(*columns: np.ndarray) -> np.ndarray:
    """One 64-bit block key from several integer columns (splitmix64 steps); never 0."""
    h = np.full(len(columns[0]), 0x9E3779B97F4A7C15, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for c in columns:
            h = h ^ np.asarray(c).astype(np.uint64)
            h = (h ^ (h >> np.uint64(30))) * _M1
            h = (h ^ (h >> np.uint64(27))) * _M2
            h ^= h >> np.uint64(31)
    return np.where(h == 0, np.uint64(1), h)


def split_block_pairs(blocks: Sequence[np.ndarray], bits: Sequence[np.ndarray], segments: Sequence[slice],
                      large: Sequence[np.ndarray], config: SplitConfig,
                      changed: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """(pair keys, pairs compared) of the large keyed blocks, split by name: cross-source pairs that share a
    large block's token *and* one bit sample of a full-name segment both records carry.

    With ``changed`` (a mask over all records, global numbering), only pairs
    with a changed end (an incremental run: the same blocks, the same pairs).
    """
    sizes = [len(b) for b in blocks]
    offsets_of(sizes)
    if not segments or not any(len(v) for v in large):
        return np.zeros(0, dtype=np.int64), 0
    source = np.concatenate([np.full(n, s, dtype=np.int32) for s, n in enumerate(sizes)])
    positions = split_positions(segments, len(large), config)
    found, compared = [np.zeros(0, dtype=np.int64)], 0
    zero = np.uint64(0)
    for k, values in enumerate(large):
        if not len(values):
            continue
        token = np.concatenate([b[:, k] for b in blocks])
        in_large = np.isin(token, values)
        rows = np.flatnonzero(in_large)
        if changed is not None:
            # Only the large blocks a changed record sits in.
            rows = rows[np.isin(token[rows], token[rows[changed[rows]]])]
        if not len(rows):
            continue
        starts = np.searchsorted(rows, np.cumsum([0, *sizes]))
        for f, seg in enumerate(segments):
            local = [rows[starts[s]:starts[s + 1]] - sum(sizes[:s]) for s in range(len(sizes))]
            present = np.concatenate([bits[s][local[s]][:, seg].any(axis=1) for s in range(len(sizes))])
            for b in range(config.bands):
                sample = np.concatenate([band_keys(bits[s][local[s]], positions[k, f, b][None, :])[:, 0]
                                         for s in range(len(sizes))])
                # A sample with no set bit says only that both names are sparse there.
                ok = present & (sample != 0)
                column = np.where(ok, mix(token[rows], sample, np.full(len(rows), (k * 16 + f) * 64 + b)), zero)
                keep = np.flatnonzero(column)
                pairs, n = _pairs_within_blocks(column[keep], source[rows[keep]], config.max_sub_block)
                pairs = _to_global(pairs, rows[keep])
                if changed is not None and len(pairs):
                    pairs = pairs[changed[pairs // SPAN] | changed[pairs % SPAN]]
                found.append(pairs)
                compared += n
        found = [unique_sorted(np.concatenate(found))]  # bounded memory: fold duplicates per key
    return found[0], compared


# --- Hamming LSH ---------------------------------------------------------------------------------


def informative_columns(bits: Sequence[np.ndarray], min_share: float, max_share: float) -> np.ndarray:
    """Bit positions set in between ``min_share`` and ``max_share`` of all records (big-endian bit order)."""
    total = sum(len(b) for b in bits)
    if not total:
        return np.zeros(0, dtype=np.int64)
    ones = sum(_column_ones(b) for b in bits)
    share = ones / total
    return np.flatnonzero((share >= min_share) & (share <= max_share)).astype(np.int64)


def _column_ones(bits: np.ndarray) -> np.ndarray:
    # Per bit position, how many rows have it set; in row chunks so memory stays at one chunk unpacked.
    out = np.zeros(bits.shape[1] * 8, dtype=np.int64)
    for start in range(0, len(bits), 65536):
        out += np.unpackbits(bits[start : start + 65536], axis=1).sum(axis=0, dtype=np.int64)
    return out


def sample_positions(columns: np.ndarray, config: LshConfig) -> np.ndarray:
    """(bands, bits_per_band) bit positions, each band drawn without replacement from ``columns``."""
    rng = np.random.default_rng(config.seed)
    k = min(config.bits_per_band, len(columns))
    if k == 0:
        return np.zeros((0, 0), dtype=np.int64)
    return np.stack([rng.choice(columns, size=k, replace=False) for _ in range(config.bands)])


def band_keys(bits: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """(n, bands) uint64: the sampled bits of each band packed into one integer per record (first sample highest)."""
    n, bands = len(bits), len(positions)
    out = np.zeros((n, bands), dtype=np.uint64)
    if not bands or not n:
        return out
    # Only the sampled byte columns, stored column-major: each bit read is then one contiguous row.
    byte_cols = np.unique(positions >> 3)
    where = {int(c): i for i, c in enumerate(byte_cols)}
    columns = np.ascontiguousarray(bits[:, byte_cols].T)
    one = np.uint64(1)
    for b in range(bands):
        key = np.zeros(n, dtype=np.uint64)
        for pos in positions[b].tolist():
            bit = (columns[where[pos >> 3]] >> np.uint8(7 - (pos & 7))) & np.uint8(1)
            key = (key << one) | bit
        out[:, b] = key
    return out


def band_keys_reference(rows: Sequence[bytes], positions: np.ndarray) -> list[list[int]]:
    """Plain-Python twin of :func:`band_keys` (the tests compare the two)."""
    out = []
    for row in rows:
        keys = []
        for band in positions:
            key = 0
            for pos in band:
                key = (key << 1) | ((row[pos // 8] >> (7 - pos % 8)) & 1)
            keys.append(key)
        out.append(keys)
    return out


def lsh_pairs(bits: Sequence[np.ndarray], config: LshConfig = LshConfig(),
              positions: np.ndarray | None = None) -> tuple[np.ndarray, int, np.ndarray]:
    """Cross-source pairs that share a block in some LSH band: (pair keys, pairs compared, positions).

    ``bits`` are the sources' packed encodings (same width). The same
    positions must be used for every source; they are drawn here from the
    informative columns unless given.
    """
    sizes = [len(b) for b in bits]
    offsets_of(sizes)  # refuses runs too large for one int64 per pair
    if positions is None:
        positions = sample_positions(informative_columns(bits, config.min_share, config.max_share), config)
    if not len(positions) or len(bits) < 2:
        return np.zeros(0, dtype=np.int64), 0, positions
    source = np.concatenate([np.full(n, s, dtype=np.int32) for s, n in enumerate(sizes)])
    keys = np.concatenate([band_keys(b, positions) for b in bits])
    found: list[np.ndarray] = []
    compared = 0
    ones = _popcount64(keys)
    for band in range(keys.shape[1]):
        # A sample with hardly a set bit says only that both records are sparse there (a missing field).
        informative = np.flatnonzero(ones[:, band] >= config.min_ones)
        pairs, n_compared = _pairs_within_blocks(keys[informative, band], source[informative], config.max_block)
        pairs = _to_global(pairs, informative)
        found.append(pairs)
        compared += n_compared
    out = unique_sorted(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
    return out, compared, positions


def _popcount64(keys: np.ndarray) -> np.ndarray:
    return np.bitwise_count(keys).astype(np.int16)


def _to_global(local_keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Pair keys over a subset's positions, mapped back to global record numbers."""
    a, b = local_keys // SPAN, local_keys % SPAN
    return pair_key(rows[a], rows[b])


def _pairs_within_blocks(key: np.ndarray, source: np.ndarray, max_block: int) -> tuple[np.ndarray, int]:
    """Every cross-source pair of records with equal ``key``, blocks above ``max_block`` dropped."""
    order = np.argsort(key, kind="stable")
    k = key[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    lengths = np.diff(np.r_[starts, len(k)])
    keep = (lengths >= 2) & (lengths <= max_block)
    # Position of each kept record inside its block, and its block's length.
    group_len = np.repeat(np.where(keep, lengths, 0), lengths)
    pos_in_group = np.arange(len(k)) - np.repeat(starts, lengths)
    active = np.flatnonzero(group_len > 0)
    found = []
    compared = 0
    d = 1
    while len(active):
        # Pair each record with the one d places later in the same block.
        active = active[pos_in_group[active] + d < group_len[active]]
        if not len(active):
            break
        a, b = order[active], order[active + d]
        cross = source[a] != source[b]
        compared += int(cross.sum())
        found.append(pair_key(a[cross], b[cross]))
        d += 1
    if not found:
        return np.zeros(0, dtype=np.int64), 0
    return np.concatenate(found), compared


def component_labels(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected-component label (the smallest member) of each of ``n`` nodes under the edges (a[i], b[i]).

    Min-label propagation with pointer jumping, in numpy: linkage graphs are
    forests of small components, so a handful of rounds settle it.
    """
    label = np.arange(n, dtype=np.int64)
    if not len(a):
        return label
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    while True:
        low = np.minimum(label[a], label[b])
        before = label.copy()
        np.minimum.at(label, a, low)
        np.minimum.at(label, b, low)
        # Pointer jumping: follow labels to their own labels until stable.
        while True:
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped
        if np.array_equal(label, before):
            return label


# --- diffused schemas (tsunagu-jp/2): view LSH and nearest neighbours inside keyed blocks ---------


@dataclass(frozen=True, slots=True)
class ViewBlockingConfig:
    """Blocking of a diffused schema (measured: docs/linkage-at-scale.md, "Blocking tsunagu-jp/2").

    Two passes, both computed at the gateway from what it already stores
    (the views and the keyed birth-year token), so they add no token and no
    information to it:

    * **view LSH**: λ-fold bit-sampling LSH inside each of ``lsh_views``
      (``lsh_bands`` bands of ``lsh_bits`` output bits each). A view is a
      keyed diffusion of the whole record, so two records whose view differs
      in a share q of its bits collide in a band with probability (1 − q)^k:
      a child's records that agree on the fields of one view meet whatever
      the other fields (a wrong birth year included) say;
    * **nearest in the birth-year block**: inside each keyed birth-year block
      (a record without a year: against the whole other source) every record
      meets its ``neighbours`` nearest records of every other source (ties
      included), the distance being the smallest share of differing bits over
      ``nearest_views``, read on a fixed sample of ``sketch_bytes`` bytes of
      each view. The candidates grow with the records, not with the square of
      the births per year; a child whose records are far apart in every view
      (a kana-only NPO record against the register) still meets its nearest
      match.

    A pair of either pass is a candidate only if its distance is at most
    ``max_distance`` in some view (about Dice ≥ 0.53 on balanced views).
    """

    lsh_views: tuple[str, ...] = ("all", "without_address", "without_demographic", "reading", "written",
                                  "reading_address_without_demographic", "reading_without_kana_given",
                                  "reading_without_kana_family")
    lsh_bands: int = 8
    lsh_bits: int = 16
    lsh_max_block: int = 100
    #: None: every view of the schema.
    nearest_views: tuple[str, ...] | None = None
    neighbours: int = 1
    #: A pair of a block is kept when one record is the other's nearest and the other among the
    #: ``mutual`` nearest of the first.
    mutual: int = 3
    #: Nearest records of each other source a record without a birth-year token meets.
    undated_neighbours: int = 3
    sketch_bytes: int = 64
    #: Records per record shortlisted by the sketch, then ranked on the whole views.
    shortlist: int = 6
    #: Distances are shares of differing view bits under the quadratic 5-tap layer; 0.467 and
    #: 0.245 are where the earlier 3-tap XOR layer read 0.44 and 0.2 (the same share of
    #: differing filter bits: 1 - 2q = (1 - 2p)^3 (1 - p)^2 against (1 - 2p)^3).
    max_distance: float = 0.467
    #: A view-LSH pair must be this near in some view (whole views).
    lsh_max_distance: float = 0.245
    seed: int = 20261
    #: Bytes of sketch words XORed at once (bounds the memory of one block's comparison).
    chunk_bytes: int = 1 << 22


def view_sketches(bits: np.ndarray, slices: Sequence[slice], config: ViewBlockingConfig) -> np.ndarray:
    """(n, views, words) uint64: ``sketch_bytes`` bytes of each view, at byte positions fixed by the seed."""
    n_words = max(config.sketch_bytes // 8, 1)
    out = np.zeros((len(bits), len(slices), n_words), dtype=np.uint64)
    for v, sl in enumerate(slices):
        rng = np.random.default_rng([config.seed, v])
        width = sl.stop - sl.start
        cols = sl.start + np.sort(rng.choice(width, size=min(n_words * 8, width), replace=False))
        chosen = np.zeros((len(bits), n_words * 8), dtype=np.uint8)
        chosen[:, : len(cols)] = bits[:, cols]
        out[:, v] = chosen.view(np.uint64)
    return out


def view_words(bits: np.ndarray, slices: Sequence[slice]) -> np.ndarray:
    """(n, views, words) uint64: the views whole (each a multiple of 64 bits); no copy when they tile the row."""
    width = slices[0].stop - slices[0].start if slices else 0
    tiled = all(sl.start == v * width and sl.stop == (v + 1) * width for v, sl in enumerate(slices))
    if tiled and bits.flags.c_contiguous and bits.shape[1] == width * len(slices) and width % 8 == 0:
        return bits.view(np.uint64).reshape(len(bits), len(slices), width // 8)
    return np.stack([np.ascontiguousarray(bits[:, sl]).view(np.uint64) for sl in slices], axis=1)


def sketch_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest share of differing bits over the views, of the sketches ``a`` (…, views, words) and ``b``."""
    bits = a.shape[-1] * 64
    return np.bitwise_count(a ^ b).sum(axis=-1, dtype=np.int32).min(axis=-1) / bits


def _block_distance(left: np.ndarray, right: np.ndarray, chunk_bytes: int) -> np.ndarray:
    """(len(left), len(right)) float32: :func:`sketch_distance` of every pair, a view and a chunk of rows at a time."""
    n_views, n_words = left.shape[1], left.shape[2]
    out = np.full((len(left), len(right)), np.inf, dtype=np.float32)
    rows = max(1, chunk_bytes // max(len(right) * n_words * 8, 1))
    for v in range(n_views):
        r = right[:, v][None]
        for start in range(0, len(left), rows):
            diff = np.bitwise_count(left[start : start + rows, v][:, None] ^ r).sum(axis=-1, dtype=np.int32)
            np.minimum(out[start : start + rows], diff / np.float32(n_words * 64), out=out[start : start + rows])
    return out


def view_lsh_positions(sl: slice, v: int, config: ViewBlockingConfig) -> np.ndarray:
    """(bands, bits) bit positions of the ``v``-th LSH view (at byte slice ``sl``), fixed by the seed."""
    rng = np.random.default_rng([config.seed, 1 << 20, v])
    width = (sl.stop - sl.start) * 8
    return np.stack([sl.start * 8 + rng.choice(width, size=min(config.lsh_bits, width), replace=False)
                     for _ in range(config.lsh_bands)])


def view_lsh_pairs(bits: Sequence[np.ndarray], slices: Sequence[slice],
                   config: ViewBlockingConfig) -> tuple[np.ndarray, int]:
    """(pair keys, pairs compared): cross-source pairs sharing a band key of some LSH view."""
    sizes = [len(b) for b in bits]
    offsets_of(sizes)
    if len(bits) < 2 or not slices:
        return np.zeros(0, dtype=np.int64), 0
    source = np.concatenate([np.full(n, s, dtype=np.int32) for s, n in enumerate(sizes)])
    found, compared = [np.zeros(0, dtype=np.int64)], 0
    for v, sl in enumerate(slices):
        keys = np.concatenate([band_keys(b, view_lsh_positions(sl, v, config)) for b in bits])
        for band in range(keys.shape[1]):
            pairs, n = _pairs_within_blocks(keys[:, band], source, config.lsh_max_block)
            found.append(pairs)
            compared += n
        found = [unique_sorted(np.concatenate(found))]
    return found[0], compared


def _nearest_in(da: np.ndarray, m: int, axis: int) -> np.ndarray:
    """Mask of the entries among the ``m`` smallest of their row (axis 1) or column (axis 0), ties included."""
    k = min(m, da.shape[axis]) - 1
    kth = np.partition(da, k, axis=axis).take(k, axis=axis)
    return da <= (kth[:, None] if axis == 1 else kth[None, :])


def nearest_pairs(blocks: Sequence[np.ndarray], sketches: Sequence[np.ndarray], views: Sequence[np.ndarray],
                  config: ViewBlockingConfig) -> tuple[np.ndarray, int]:
    """(pair keys, pairs compared): in each keyed block, each record and its nearest records of every other source.

    ``blocks``: each source's keyed tokens (the first column is the block:
    tsunagu-jp/2 has the birth year only); ``sketches``: :func:`view_sketches`
    of each source, ``views`` the same views whole (:func:`view_words`). A record without a token is compared with the whole other
    source (only its own nearest are kept). Only pairs within
    ``max_distance`` are returned.
    """
    sizes = [len(b) for b in blocks]
    offsets = offsets_of(sizes)
    found, compared = [np.zeros(0, dtype=np.int64)], 0
    per_source = [keyed_blocks(b[:, :1]) for b in blocks]
    undated = [np.flatnonzero(b[:, 0] == 0) if b.shape[1] else np.arange(len(b)) for b in blocks]

    def add(s: int, rows_s: np.ndarray, t: int, rows_t: np.ndarray, both: bool, m: int) -> None:
        nonlocal compared
        if not len(rows_s) or not len(rows_t):
            return
        # The sketch (a sample of each view) shortlists ``shortlist`` per record; the whole views
        # rank the shortlist, so the sample's noise costs no true neighbour.
        dist = _block_distance(sketches[s][rows_s], sketches[t][rows_t], config.chunk_bytes)
        compared += dist.size
        short = _nearest_in(dist, config.shortlist + m - 1, 1)
        if both:
            short |= _nearest_in(dist, config.shortlist + m - 1, 0)
        i, j = np.nonzero(short)
        exact = np.full(dist.shape, np.inf, dtype=np.float32)
        step = max(1, config.chunk_bytes // max(views[s][0].nbytes, 1))
        for start in range(0, len(i), step):
            a, b = i[start : start + step], j[start : start + step]
            exact[a, b] = sketch_distance(views[s][rows_s[a]], views[t][rows_t[b]])
        keep = _nearest_in(exact, m, 1)
        if both:
            # One record's nearest, and among the ``mutual`` nearest of the other: a record of a large
            # source does not pull in the nearest of a small source that has no record of its child.
            row_m, col_m = _nearest_in(exact, config.mutual, 1), _nearest_in(exact, config.mutual, 0)
            keep = (keep & col_m) | (_nearest_in(exact, m, 0) & row_m)
        keep &= exact <= config.max_distance
        i, j = np.nonzero(keep)
        found.append(pair_key(offsets[s] + rows_s[i], offsets[t] + rows_t[j]))

    for s in range(len(blocks)):
        for t in range(len(blocks)):
            if s == t:
                continue
            if s < t:
                for key, rows_s in per_source[s].items():
                    rows_t = per_source[t].get(key)
                    if rows_t is not None:
                        add(s, rows_s, t, rows_t, True, config.neighbours)
            # An undated record of s against every record of t: its own nearest only (a record with a
            # date has its own block), but more of them: the whole source is a larger block.
            add(s, undated[s], t, np.arange(sizes[t]), False, config.undated_neighbours)
    return unique_sorted(np.concatenate(found)), compared


def within_distance(views: Sequence[np.ndarray], keys: np.ndarray, offsets: np.ndarray,
                    max_distance: float, chunk: int = 4096) -> np.ndarray:
    """Mask of the pairs (``keys``) at most ``max_distance`` apart in some view (``views``: per source, :func:`view_words`)."""
    out = np.zeros(len(keys), dtype=bool)
    sa, ia, sb, ib = split_keys(keys, offsets)
    for s in np.unique(sa).tolist():
        for t in np.unique(sb[sa == s]).tolist():
            sel = np.flatnonzero((sa == s) & (sb == t))
            for start in range(0, len(sel), chunk):
                part = sel[start : start + chunk]
                out[part] = sketch_distance(views[s][ia[part]], views[t][ib[part]]) <= max_distance
    return out


def diffused_candidates(blocks: Sequence[np.ndarray], bits: Sequence[np.ndarray], schema,
                        config: ViewBlockingConfig = ViewBlockingConfig()) -> list[PassStats]:
    """The blocking passes of a diffused schema (:class:`ViewBlockingConfig`), each with its candidates."""
    offsets = offsets_of([len(b) for b in bits])
    slices = [schema.view(v).byte_slice for v in (config.nearest_views or tuple(v.name for v in schema.views))]
    sketches = [view_sketches(b, slices, config) for b in bits]
    views = [view_words(b, slices) for b in bits]
    near, near_compared = nearest_pairs(blocks, sketches, views, config)
    listed, lsh_compared = view_lsh_pairs(bits, [schema.view(v).byte_slice for v in config.lsh_views], config)
    lsh = listed[within_distance(views, listed, offsets, config.lsh_max_distance)]
    return [PassStats("nearest in birth-year blocks", near_compared, near), PassStats("view LSH", lsh_compared, lsh)]
