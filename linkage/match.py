"""Multi-source matching: anonlink candidate generation, second-stage scoring, anonlink solving.

read → validate → normalise → encode happen before; here:

1. candidates: blocking passes (``linkage.blocking``): keyed birth-date
   blocks, inside each block anonlink's accelerated Dice on the written name
   and on the reading separately (a loose threshold: the second stage
   decides); blocks too large to compare whole split by a sample of the
   name, and records without a usable birth date meeting by their name
   (so the pairs compared do not grow with the square of the town); and
   Hamming LSH on the encodings, which finds pairs whose birth dates
   disagree (whole-encoding Dice);
2. score: per-field similarities (``compare``) weighed by a Fellegi–Sunter
   model (``score``) whose u-probabilities are fitted on random pairs of
   this very run;
3. solve: anonlink's probabilistic greedy solver over the pairs above the
   match threshold, at most one record per source in a cluster (the same
   clusters come out solving each connected component alone, which the Dask
   engine and incremental runs use).

The review queue (``LinkResult.review_queue``) holds only uncertain pairs
whose decision can change a cluster, by expected gain, at most 1 % of the
records. Steps can run on an :class:`Engine` (``linkage.distributed``: Dask).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from anonlink.similarities import dice_coefficient_accelerated
from anonlink.solving import probabilistic_greedy_solve
from bitarray import bitarray

from linkage.blocking import (
    SPAN,
    LshConfig,
    PassStats,
    SplitConfig,
    ViewBlockingConfig,
    component_labels,
    diffused_candidates,
    keyed_tasks,
    large_tokens,
    lsh_pairs,
    name_segments,
    offsets_of,
    split_block_pairs,
    split_keys,
    undated_pairs,
    unique_sorted,
)
from linkage.compare import PairSimilarities, compare_pairs
from linkage.encode import Encodings
from linkage.schema import EncodingSchema
from linkage.score import ScoringModel, capped, guard_releasable

#: Total weight at or above which a pair is a match (measured: README, "Quality").
MATCH_THRESHOLD = 12.0
#: Pairs between this and MATCH_THRESHOLD go to clerical review.
REVIEW_THRESHOLD = 8.0
#: Loose Dice threshold on the written name or the reading for candidate generation.
CANDIDATE_THRESHOLD = 0.45
#: The Hamming-LSH blocking pass (``linkage.blocking``) that finds pairs whose dates disagree.
LSH = LshConfig()
#: Keyed blocks too large to compare whole are split by name (``linkage.blocking.SplitConfig``).
SPLIT = SplitConfig()
#: Blocking of a diffused schema (tsunagu-jp/2; ``linkage.blocking.ViewBlockingConfig``).
VIEW_BLOCKING = ViewBlockingConfig()
#: Whole-encoding Dice an LSH pair needs to become a candidate.
LSH_DICE = 0.7
#: Review queue: at most this share of the records (one review pair per hundred records).
REVIEW_SHARE = 0.01
#: Random pairs drawn to fit the u-probabilities.
U_SAMPLE = 200_000
#: Two matches of one record into one source closer than this (bits) are ambiguous.
AMBIGUITY_MARGIN = 3.0
#: Lone pairs (:func:`lone_pairs`): at most this far below the match threshold.
LONE_MARGIN = 10.0
#: Solver: share of pairwise evidence needed to merge two groups.
MERGE_THRESHOLD = 0.5
#: Weight of a must-link pair (overwhelming evidence: the solver builds the cluster around it).
FORCED_LINK = 1.0e6
#: Weight of a cannot-link pair (it never reaches the match threshold nor the review queue).
FORBIDDEN = -1.0e6

Position = tuple[int, int]  # (source index, record index)


@dataclass(frozen=True, slots=True)
class Constraints:
    """Decisions the run must respect (clerical review): pairs of (source, record) positions.

    ``link`` applies them in two places: before solving, a constrained
    candidate pair's weight becomes :data:`FORCED_LINK` or :data:`FORBIDDEN`;
    after solving (:func:`enforce_constraints`), a must-link pair the
    candidate stage never produced is merged, and a cluster that still holds
    a cannot-link pair (joined through a third record) is split.
    """

    must_link: Sequence[tuple[Position, Position]] = ()
    cannot_link: Sequence[tuple[Position, Position]] = ()

    def __bool__(self) -> bool:
        return bool(self.must_link or self.cannot_link)


@dataclass(slots=True)
class ScoredPairs:
    """Candidate pairs across sources with their similarities and total weight."""

    source_a: np.ndarray
    index_a: np.ndarray
    source_b: np.ndarray
    index_b: np.ndarray
    similarities: PairSimilarities
    weight: np.ndarray


@dataclass(slots=True)
class LinkResult:
    """Clusters (lists of (source index, record index)), every record included once."""

    clusters: list[list[tuple[int, int]]]
    pairs: ScoredPairs
    model: ScoringModel
    match_threshold: float
    review_threshold: float
    candidate_count: int
    passes: list[PassStats] = field(default_factory=list)
    #: Incremental runs: per source, the records whose cluster is exactly the previous run's (None: a full run).
    unchanged: list[np.ndarray] | None = None
    #: Incremental runs: per source, the tokens of the previous run's records that changed or left.
    departed: list[list[str]] | None = None

    def review_queue(self, budget: int | None = None) -> np.ndarray:
        """Indices into ``pairs`` for clerical review, the most useful first, at most ``budget`` of them.

        A pair is queued only when a person's decision can matter:

        * it is genuinely uncertain — its weight lies within
          ``match_threshold − review_threshold`` bits of the match threshold
          (read as log-odds against the threshold, P(match) between about
          1/17 and 16/17), or it is an ambiguous match (a rival equally good);
        * the decision can change a cluster — a linked pair could be split,
          or an unlinked pair could be joined without putting two records of
          one source into one person (a record already linked into the other
          side's source would have to leave that link: that is not this
          pair's decision).

        They are ordered by expected gain: the chance the automatic decision
        is wrong (min(p, 1 − p), 1/2 for an ambiguous pair) times the
        record pairs the decision moves. ``budget`` defaults to
        :data:`REVIEW_SHARE` of the records, so the queue fits a team.
        """
        w = self.pairs.weight
        p = self.pairs
        n_records = sum(len(c) for c in self.clusters)
        if budget is None:
            budget = max(1, int(np.ceil(REVIEW_SHARE * n_records)))
        margin = self.match_threshold - self.review_threshold
        amb = ambiguous(self.pairs, self.match_threshold)
        uncertain = np.isfinite(w) & (np.abs(w - self.match_threshold) <= margin)
        candidates = np.flatnonzero(uncertain | amb)
        if not len(candidates) or budget <= 0:
            return np.zeros(0, dtype=np.int64)
        # Cluster of every record, and the sources each cluster holds as a bit mask (numpy, no per-record dicts).
        member_cluster = np.fromiter((c for c, members in enumerate(self.clusters) for _ in members), np.int64, n_records)
        member_source = np.fromiter((s for members in self.clusters for s, _ in members), np.int64, n_records)
        member_index = np.fromiter((r for members in self.clusters for _, r in members), np.int64, n_records)
        n_sources = int(member_source.max()) + 1
        per_source = np.zeros(n_sources, dtype=np.int64)
        np.maximum.at(per_source, member_source, member_index + 1)
        offsets = np.concatenate([[0], np.cumsum(per_source)])
        label = np.full(int(offsets[-1]), -1, dtype=np.int64)
        label[offsets[member_source] + member_index] = member_cluster
        # Past 63 sources the masks are Python integers (object arrays), so any number of sources works.
        bit = np.left_shift(1, member_source) if n_sources < 63 else np.array([1 << int(s) for s in member_source], dtype=object)
        held = np.zeros(len(self.clusters), dtype=bit.dtype)
        np.bitwise_or.at(held, member_cluster, bit)
        sizes = np.bincount(member_cluster, minlength=len(self.clusters)).astype(np.float64)
        ca = label[offsets[p.source_a[candidates]] + p.index_a[candidates]]
        cb = label[offsets[p.source_b[candidates]] + p.index_b[candidates]]
        same = ca == cb
        joinable = (held[ca] & held[cb]) == 0
        can_change = same | joinable
        prob = 1.0 / (1.0 + np.exp2(-(w[candidates] - self.match_threshold)))
        doubt = np.where(amb[candidates], 0.5, np.minimum(prob, 1.0 - prob))
        moved = np.where(same, sizes[ca] - 1.0, sizes[ca] * sizes[cb])
        gain = doubt * moved
        keep = np.flatnonzero(can_change)
        order = keep[np.lexsort((-w[candidates][keep], -gain[keep]))]
        return candidates[order[:budget]]


def _bitarrays(enc: Encodings, part: slice) -> list[bitarray]:
    rows = np.ascontiguousarray(enc.bits[:, part])
    out = []
    for row in rows:
        ba = bitarray(endian="big")
        ba.frombytes(row.tobytes())
        out.append(ba)
    return out


def _first_stage_parts(schema: EncodingSchema) -> list[slice]:
    """The written name and the reading, each compared on its own (either may be missing).

    A diffused schema (tsunagu-jp/2) names its first-stage views instead: the
    whole record and views without a field that often differs between a
    child's records (a move, a typo in the date).
    """
    if schema.diffused:
        return [schema.view(v).byte_slice for v in schema.document["matching"]["firstStage"]]
    name = slice(schema.segment("name_family").byte_slice.start, schema.segment("name_full").byte_slice.stop)
    kana = slice(schema.segment("kana_family").byte_slice.start, schema.segment("kana_full").byte_slice.stop)
    return [name, kana]


def bitarray_datasets(encodings: Sequence[Encodings]) -> list[list[list[bitarray]]]:
    """Per source and first-stage part, the rows as bitarrays (what anonlink's Dice reads)."""
    parts = _first_stage_parts(encodings[0].schema)
    return [[_bitarrays(e, p) for p in parts] for e in encodings]


def compare_block_tasks(datasets: list, tasks: Sequence[tuple[int, np.ndarray, int, np.ndarray]], threshold: float,
                        offsets: np.ndarray) -> np.ndarray:
    """Pair keys of the block pairs ``tasks`` whose written names or readings reach ``threshold`` (anonlink Dice)."""
    found = [np.zeros(0, dtype=np.int64)]
    for s, rows_s, t, rows_t in tasks:
        for p in range(len(datasets[s])):
            left = [datasets[s][p][i] for i in rows_s]
            right = [datasets[t][p][i] for i in rows_t]
            _sims, (i0, i1) = dice_coefficient_accelerated([left, right], threshold)
            if len(i0):
                a = rows_s[np.frombuffer(i0, dtype=np.uint32)].astype(np.int64)
                b = rows_t[np.frombuffer(i1, dtype=np.uint32)].astype(np.int64)
                # One int64 per pair: global record numbers of both sides.
                found.append((offsets[s] + a) * SPAN + offsets[t] + b)
    return np.concatenate(found)


def _spread(tasks: list, workers: int) -> list[list]:
    """Deal tasks to workers, largest first, each to the least loaded."""
    loads = [0] * workers
    shares: list[list] = [[] for _ in range(workers)]
    for task in sorted(tasks, key=lambda x: -len(x[1]) * len(x[3])):
        w = loads.index(min(loads))
        shares[w].append(task)
        loads[w] += len(task[1]) * len(task[3])
    return [s for s in shares if s]


def candidate_pairs(
    encodings: Sequence[Encodings],
    threshold: float | None = None,
    lsh: LshConfig | None = LSH,
    passes: list[PassStats] | None = None,
    engine: "Engine | None" = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(source_a, index_a, source_b, index_b) for every candidate pair, source_a < source_b.

    Two records are compared when a blocking pass (``linkage.blocking``) puts
    them together: a shared keyed birth-date block (a large one split by a
    name sample; a record with no usable birth date meets by its name), or a
    shared Hamming-LSH block of their encodings (``lsh``; None turns the pass
    off). They are candidates when their written names or their
    readings reach ``threshold`` (Dice). Keyed blocks are compared with
    anonlink's accelerated Dice (on the ``engine``'s workers, if any); LSH blocks are small
    and many, so their pairs are listed and checked with numpy. ``passes``, if
    given, receives one :class:`PassStats` per pass.
    """
    keys, stats = candidate_keys(encodings, threshold, lsh, engine)
    if passes is not None:
        passes.extend(stats)
    return split_keys(keys, offsets_of([len(e) for e in encodings]))


def candidate_keys(
    encodings: Sequence[Encodings], threshold: float | None = None,
    lsh: LshConfig | None = LSH, engine: "Engine | None" = None, positions: np.ndarray | None = None,
) -> tuple[np.ndarray, list[PassStats]]:
    """Sorted unique pair keys (``linkage.blocking.pair_key``) of every candidate pair, and per-pass figures."""
    if threshold is None:  # the schema may name its own (a diffused schema does)
        threshold = encodings[0].schema.document.get("matching", {}).get("candidateThreshold", CANDIDATE_THRESHOLD)
    offsets = offsets_of([len(e) for e in encodings])
    blocks = [e.blocks for e in encodings]
    if encodings[0].schema.diffused:
        # tsunagu-jp/2: nearest records inside birth-year blocks and LSH on the views (linkage.blocking).
        stats = diffused_candidates(blocks, [e.bits for e in encodings], encodings[0].schema, VIEW_BLOCKING)
        return unique_sorted(np.concatenate([s.keys for s in stats])), stats
    segments = name_segments(encodings[0].schema)
    large = large_tokens(blocks, SPLIT.max_block) if segments else None
    tasks, compared = keyed_tasks(blocks, large)
    if engine is not None:
        found = engine.compare_blocks(encodings, _spread(tasks, engine.partitions), threshold, offsets)
    else:
        found = [compare_block_tasks(bitarray_datasets(encodings), tasks, threshold, offsets)] if tasks else []
    # A pair found through several blocks or both parts counts once.
    keyed = unique_sorted(np.concatenate(found + [np.zeros(0, dtype=np.int64)]))
    stats = [PassStats("birth-date blocks", compared, keyed)]
    if large is not None:
        bits = [e.bits for e in encodings]
        listed, split_compared = split_block_pairs(blocks, bits, segments, large, SPLIT)
        undated, undated_compared = undated_pairs(blocks, bits, segments, SPLIT)
        listed, split_compared = unique_sorted(np.concatenate([listed, undated])), split_compared + undated_compared
        # The keyed pass's test (written name or reading Dice), on listed pairs.
        if engine is not None:
            split = engine.filter_pairs(encodings, listed, threshold, None)
        else:
            split = listed[first_stage(encodings, listed, threshold)]
        stats.append(PassStats("large birth-date blocks × name", split_compared, split))
        keyed = unique_sorted(np.concatenate([keyed, split]))
    if lsh is None:
        return keyed, stats
    # ``positions``: the LSH bit positions to use (an incremental chain keeps its own); else drawn from this data.
    lsh_keys, lsh_compared, _positions = lsh_pairs([e.bits for e in encodings], lsh, positions)
    # Pairs of this pass are near in the whole encoding, not just in a name: the whole-encoding
    # Dice (anonlink's measure) keeps the common-surname pairs a loose name test would let through.
    if engine is not None:
        lsh_found = engine.filter_pairs(encodings, lsh_keys, LSH_DICE, [slice(None)])
    else:
        lsh_found = lsh_keys[first_stage(encodings, lsh_keys, LSH_DICE, [slice(None)])]
    stats.append(PassStats("Hamming LSH", lsh_compared, lsh_found))
    return unique_sorted(np.concatenate([keyed, lsh_found])), stats


def first_stage(encodings: Sequence[Encodings], keys: np.ndarray, threshold: float,
                parts: Sequence[slice] | None = None) -> np.ndarray:
    """Mask of the pairs whose written names or readings reach ``threshold`` (Dice, numpy popcounts).

    The same test as the keyed pass's anonlink comparison, for pairs that are
    listed one by one instead of block against block.
    """
    parts = parts or _first_stage_parts(encodings[0].schema)
    offsets = offsets_of([len(e) for e in encodings])
    sa, ia, sb, ib = split_keys(keys, offsets)
    out = np.zeros(len(keys), dtype=bool)
    # Each source's part as 64-bit words (one popcount per word, not per byte) and its popcount per
    # record, once; per pair only the intersection is counted.
    words: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def part_words(src: int, p: int) -> tuple[np.ndarray, np.ndarray]:
        if (src, p) not in words:
            w = np.ascontiguousarray(encodings[src].bits[:, parts[p]])
            if w.shape[1] % 8 == 0:
                w = w.view(np.uint64)
            words[(src, p)] = (w, np.bitwise_count(w).sum(axis=1, dtype=np.int32))
        return words[(src, p)]

    for s in np.unique(sa):
        for t in np.unique(sb[sa == s]):
            sel = np.flatnonzero((sa == s) & (sb == t))
            for start in range(0, len(sel), 200_000):
                chunk = sel[start : start + 200_000]
                for p in range(len(parts)):
                    (wa, ca), (wb, cb) = part_words(int(s), p), part_words(int(t), p)
                    ra, rb = ia[chunk], ib[chunk]
                    na, nb = ca[ra], cb[rb]
                    inter = np.bitwise_count(wa[ra] & wb[rb]).sum(axis=1, dtype=np.int32)
                    with np.errstate(invalid="ignore", divide="ignore"):
                        dice = np.where(na + nb > 0, 2.0 * inter / np.maximum(na + nb, 1), 0.0)
                    out[chunk] |= dice >= threshold
    return out


def fit_model(encodings: Sequence[Encodings], seed: int = 0, sample: int = U_SAMPLE) -> ScoringModel:
    """A scoring model whose u-probabilities come from random cross-source pairs."""
    if encodings and encodings[0].schema.diffused:
        # Diffused views say nothing about one field of two strangers (that is
        # their point), so random pairs cannot measure u: the measured priors stand.
        return ScoringModel().fit_u(PairSimilarities(np.empty((0, 6)), np.empty(0, dtype=np.int8)))
    rng = np.random.default_rng(seed)
    sources = [s for s, e in enumerate(encodings) if len(e)]
    sims_parts = []
    pairs = [(s, t) for i, s in enumerate(sources) for t in sources[i + 1 :]]
    if not pairs:
        return ScoringModel().fit_u(PairSimilarities(np.empty((0, 6)), np.empty(0, dtype=np.int8)))
    per_pair = max(1, sample // len(pairs))
    for s, t in pairs:
        n_s, n_t = len(encodings[s]), len(encodings[t])
        if n_s * n_t <= per_pair:
            # Small sources: every pair once (a sample with replacement would
            # count the same few pairs thousands of times).
            ia, ib = (g.ravel() for g in np.meshgrid(np.arange(n_s), np.arange(n_t), indexing="ij"))
        else:
            ia = rng.integers(0, n_s, per_pair)
            ib = rng.integers(0, n_t, per_pair)
        sims_parts.append(compare_pairs(encodings[s], ia, encodings[t], ib))
    sims = PairSimilarities(
        np.concatenate([p.values for p in sims_parts]),
        np.concatenate([p.date_detail for p in sims_parts]),
    )
    return ScoringModel().fit_u(sims)


def score_slices(encodings: Sequence[Encodings], slices: Sequence[tuple[int, int, np.ndarray]], ia: np.ndarray,
                 ib: np.ndarray) -> list[tuple[np.ndarray, PairSimilarities]]:
    """(selection, similarities) per slice (s, t, selection) of the candidate pairs."""
    return [(sel, compare_pairs(encodings[s], ia[sel], encodings[t], ib[sel])) for s, t, sel in slices]


def score_pairs(
    encodings: Sequence[Encodings],
    sa: np.ndarray,
    ia: np.ndarray,
    sb: np.ndarray,
    ib: np.ndarray,
    model: ScoringModel,
    engine: Engine | None = None,
) -> ScoredPairs:
    """Compare and weigh candidate pairs, in slices (on the ``engine``'s workers, if any)."""
    values = np.full((len(sa), 6), np.nan)
    detail = np.zeros(len(sa), dtype=np.int8)
    slices = []
    for s in np.unique(sa):
        for t in np.unique(sb[sa == s]):
            sel = np.flatnonzero((sa == s) & (sb == t))
            slices.extend((int(s), int(t), part) for part in np.array_split(sel, max(1, len(sel) // 100_000)))
    scored = engine.score(encodings, slices, ia, ib) if engine is not None else score_slices(encodings, slices, ia, ib)
    for sel, sims in scored:
        values[sel] = sims.values
        detail[sel] = sims.date_detail
    sims = PairSimilarities(values, detail)
    return ScoredPairs(sa, ia, sb, ib, sims, model.score(sims))


def ambiguous(pairs: ScoredPairs, match_threshold: float, margin: float = AMBIGUITY_MARGIN) -> np.ndarray:
    """Mask of matching pairs whose record has a rival in the same other source.

    When one record matches two records of another source almost equally well
    (two children with one name and no birth date to tell them apart), linking
    either would be a guess: both pairs go to clerical review instead.
    """
    out = np.zeros(len(pairs.weight), dtype=bool)
    strong = np.flatnonzero(pairs.weight >= match_threshold - margin)
    for mine, their_source in ((
        (pairs.source_a, pairs.index_a), pairs.source_b), ((pairs.source_b, pairs.index_b), pairs.source_a)):
        src, idx = mine
        key = (src[strong].astype(np.int64) << 40) | (idx[strong] << 8) | their_source[strong].astype(np.int64)
        order = np.lexsort((-pairs.weight[strong], key))
        k, w = key[order], pairs.weight[strong][order]
        same_next = k[1:] == k[:-1]
        close = same_next & (w[:-1] - w[1:] < margin)
        # The best pair of a group and each rival within the margin are flagged.
        flagged = np.zeros(len(k), dtype=bool)
        flagged[:-1] |= close
        flagged[1:] |= close
        out[strong[order[flagged]]] = True
    return out & (pairs.weight >= match_threshold)


def twin_suspects(pairs: ScoredPairs, match_threshold: float, margin: float = AMBIGUITY_MARGIN) -> np.ndarray:
    """Mask of the pairs the given-name guard released (``score.guard_releasable``) that show a twin pattern.

    A released pair is a record pair whose given names disagree, kept because
    everything else agrees. If either record has two or more live pairs
    (weight within ``margin`` below the threshold or above) into one source,
    it sits beside a near-copy of itself there, the footprint of twins, and
    the released pair is dropped. Live pairs of a record all lie in its
    solver component, so components solved alone decide this the same way.
    """
    released = guard_releasable(pairs.similarities)
    if not released.any():
        return released
    live = np.flatnonzero(pairs.weight >= match_threshold - margin)
    suspect_keys = []
    for (src, idx), their_source in (((pairs.source_a, pairs.index_a), pairs.source_b),
                                     ((pairs.source_b, pairs.index_b), pairs.source_a)):
        key = (src[live].astype(np.int64) << 40) | (idx[live].astype(np.int64) << 8) | their_source[live].astype(np.int64)
        uniq, counts = np.unique(key, return_counts=True)
        suspect_keys.append(uniq[counts >= 2] >> 8)
    suspect = np.unique(np.concatenate(suspect_keys))
    rec_a = (pairs.source_a.astype(np.int64) << 32) | pairs.index_a.astype(np.int64)
    rec_b = (pairs.source_b.astype(np.int64) << 32) | pairs.index_b.astype(np.int64)
    return released & (np.isin(rec_a, suspect) | np.isin(rec_b, suspect))


def solve(encodings: Sequence[Encodings], pairs: ScoredPairs, match_threshold: float) -> list[list[tuple[int, int]]]:
    """Clusters from the unambiguous pairs at or above ``match_threshold`` and the lone pairs; singletons for the rest."""
    return with_singletons(encodings, cluster_pairs(pairs, match_threshold))


def lone_pairs(pairs: ScoredPairs, match_threshold: float, margin: float = AMBIGUITY_MARGIN) -> np.ndarray:
    """Mask of the pairs below the match threshold that link all the same: each other's only plausible match.

    A pair within :data:`LONE_MARGIN` below ``match_threshold`` is linked when
    it is the single best pair of both its records (no other pair of either
    record weighs as much, so neither record can join any cluster), no other
    pair of either record into the same other source comes within ``margin``
    (that would be a guess between two), its weight is not capped
    (``score.capped``: a name alone, or names over contradicting birth dates
    without a fully agreeing address, never link), and the given-name guard
    did not have to yield for it (``score.guard_releasable``). A record known to two
    sources whose date was replaced or whose names were mistyped twice has
    no rival and positive evidence; a namesake usually has the true record
    as a rival. The mask depends on each record's own pairs only, so a
    component holding both records decides it the same way as the whole run.
    """
    w = pairs.weight
    floor = match_threshold - LONE_MARGIN
    out = np.zeros(len(w), dtype=bool)
    ok = np.flatnonzero(np.isfinite(w) & (w >= floor))
    if not len(ok):
        return out
    rec_a = (pairs.source_a[ok].astype(np.int64) << 32) | pairs.index_a[ok].astype(np.int64)
    rec_b = (pairs.source_b[ok].astype(np.int64) << 32) | pairs.index_b[ok].astype(np.int64)
    recs, inv = np.unique(np.concatenate([rec_a, rec_b]), return_inverse=True)
    ends = np.concatenate([w[ok], w[ok]])
    best = np.full(len(recs), -np.inf)
    np.maximum.at(best, inv, ends)
    ties = np.zeros(len(recs), dtype=np.int64)
    np.add.at(ties, inv, ends == best[inv])
    # The runner-up into the same other source, per record end: sorted by (record, other source, -weight).
    other = np.concatenate([pairs.source_b[ok], pairs.source_a[ok]]).astype(np.int64)
    group = inv.astype(np.int64) * 256 + other
    order = np.lexsort((-ends, group))
    g_sorted = group[order]
    runner = np.full(len(ends), -np.inf)
    second = np.flatnonzero(g_sorted[1:] == g_sorted[:-1]) + 1
    first_of = np.searchsorted(g_sorted, g_sorted[second], side="left")
    is_second = second == first_of + 1
    runner[order[first_of[is_second]]] = ends[order[second[is_second]]]
    n = len(ok)
    ia, ib = inv[:n], inv[n:]
    lone = ((w[ok] < match_threshold) & (w[ok] == best[ia]) & (w[ok] == best[ib]) & (ties[ia] == 1) & (ties[ib] == 1)
            & (w[ok] - runner[:n] >= margin) & (w[ok] - runner[n:] >= margin))
    out[ok[lone]] = True
    return out & ~guard_releasable(pairs.similarities) & ~capped(pairs.similarities)


def solver_mask(pairs: ScoredPairs, match_threshold: float, lone: np.ndarray | None = None) -> np.ndarray:
    """Mask of the pairs the solver reads: within AMBIGUITY_MARGIN below the threshold or above, and the lone pairs.

    ``lone``: the :func:`lone_pairs` mask of ``pairs`` if already computed.
    """
    lone = lone_pairs(pairs, match_threshold) if lone is None else lone
    return (pairs.weight >= match_threshold - AMBIGUITY_MARGIN) | lone


def cluster_pairs(pairs: ScoredPairs, match_threshold: float, lone: np.ndarray | None = None) -> list[list[tuple[int, int]]]:
    """The clusters of two or more records that anonlink's greedy solver builds from ``pairs``, and the lone pairs.

    ``lone``: the :func:`lone_pairs` mask of ``pairs`` when they are a part
    of a run's pairs (it depends on every pair of a record); by default it is
    computed from ``pairs``.
    """
    lone = lone_pairs(pairs, match_threshold) if lone is None else lone
    keep = np.flatnonzero((pairs.weight >= match_threshold) & ~ambiguous(pairs, match_threshold)
                          & ~twin_suspects(pairs, match_threshold))
    order = keep[np.argsort(-pairs.weight[keep], kind="stable")]
    # anonlink wants similarities in decreasing order; a logistic map keeps the order.
    sims = array("d", (1.0 / (1.0 + np.exp(-pairs.weight[order] / 4.0))).tolist())
    dset = (array("I", pairs.source_a[order].tolist()), array("I", pairs.source_b[order].tolist()))
    recs = (array("I", pairs.index_a[order].tolist()), array("I", pairs.index_b[order].tolist()))
    groups = probabilistic_greedy_solve((sims, dset, recs), merge_threshold=MERGE_THRESHOLD, deduplicated=True)
    clusters = [sorted((int(d), int(r)) for d, r in g) for g in groups]
    # A lone pair's records have no pair at the threshold, so they are in no cluster yet.
    clusters.extend(sorted([(int(pairs.source_a[k]), int(pairs.index_a[k])), (int(pairs.source_b[k]), int(pairs.index_b[k]))])
                    for k in np.flatnonzero(lone).tolist())
    return clusters


def with_singletons(encodings: Sequence[Encodings], clusters: list[list[tuple[int, int]]]) -> list[list[tuple[int, int]]]:
    """``clusters`` plus one singleton for every record in none of them."""
    out = list(clusters)
    seen = [np.zeros(len(enc), dtype=bool) for enc in encodings]
    for c in clusters:
        for s, r in c:
            seen[s][r] = True
    for s in range(len(encodings)):
        out.extend([(s, r)] for r in np.flatnonzero(~seen[s]).tolist())
    return out


def take_pairs(pairs: ScoredPairs, index: np.ndarray) -> ScoredPairs:
    """The scored pairs at ``index``."""
    sims = PairSimilarities(pairs.similarities.values[index], pairs.similarities.date_detail[index])
    return ScoredPairs(pairs.source_a[index], pairs.index_a[index], pairs.source_b[index], pairs.index_b[index], sims,
                       pairs.weight[index])


def components(pairs: ScoredPairs, sizes: Sequence[int], match_threshold: float) -> list[np.ndarray]:
    """Pair indices per connected component of the pairs the solver can look at.

    The solver reads only pairs within AMBIGUITY_MARGIN below the threshold
    or above (the ambiguity test compares a record's pairs with each other,
    and they share that record) and the lone pairs (:func:`solver_mask`), so
    solving each component alone gives the clusters of solving all pairs at
    once (pass the run's :func:`lone_pairs` mask to :func:`cluster_pairs`).
    """
    offsets = offsets_of(sizes)
    live = np.flatnonzero(solver_mask(pairs, match_threshold))
    if not len(live):
        return []
    ga = offsets[pairs.source_a[live]] + pairs.index_a[live]
    gb = offsets[pairs.source_b[live]] + pairs.index_b[live]
    label = component_labels(int(offsets[-1]), ga, gb)
    comp = label[ga]
    order = np.argsort(comp, kind="stable")
    cuts = np.flatnonzero(np.diff(comp[order])) + 1
    return [live[part] for part in np.split(order, cuts)]


def solve_components(encodings: Sequence[Encodings], pairs: ScoredPairs, match_threshold: float,
                     engine: "Engine | None" = None) -> list[list[tuple[int, int]]]:
    """:func:`solve`, one connected component at a time (in the engine's workers when given)."""
    parts = components(pairs, [len(e) for e in encodings], match_threshold)
    lone = lone_pairs(pairs, match_threshold)
    if engine is not None:
        clusters = engine.solve_components(pairs, parts, match_threshold, lone)
    else:
        clusters = [c for part in parts for c in cluster_pairs(take_pairs(pairs, part), match_threshold, lone[part])]
    return with_singletons(encodings, clusters)


class Engine:
    """Where the heavy steps run: without one, this module's functions in this process.

    The shells own the processes: ``service.pools.ForkPool`` runs the steps in
    forked worker processes on this machine; ``linkage.distributed`` on Dask.
    """

    partitions: int = 1
    #: Solve each connected component apart (:func:`solve_components`, spread over the workers), or all pairs at once here.
    solves_components: bool = True

    def compare_blocks(self, encodings: Sequence[Encodings], shares: list, threshold: float,
                       offsets: np.ndarray) -> list[np.ndarray]:
        """Pair keys found by each share of keyed block tasks."""
        raise NotImplementedError

    def filter_pairs(self, encodings: Sequence[Encodings], keys: np.ndarray, threshold: float,
                     parts: Sequence[slice] | None) -> np.ndarray:
        """The keys whose ``parts`` (None: the first-stage parts) reach ``threshold`` (Dice, :func:`first_stage`)."""
        raise NotImplementedError

    def score(self, encodings: Sequence[Encodings], slices: list, ia: np.ndarray, ib: np.ndarray) -> list:
        """(selection, similarities) per slice (s, t, selection) of the candidate pairs."""
        raise NotImplementedError

    def solve_components(self, pairs: ScoredPairs, parts: list[np.ndarray], match_threshold: float,
                         lone: np.ndarray) -> list:
        """Clusters of every component (``lone``: the run's :func:`lone_pairs` mask)."""
        raise NotImplementedError


def link(
    encodings: Sequence[Encodings],
    *,
    match_threshold: float = MATCH_THRESHOLD,
    review_threshold: float = REVIEW_THRESHOLD,
    model: ScoringModel | None = None,
    progress: Callable[[str], None] | None = None,
    dask_address: str | None = None,
    engine: Engine | None = None,
    constraints: Constraints | None = None,
) -> LinkResult:
    """Link any number of sources; every record ends in exactly one cluster.

    ``constraints`` (reviewers' must-link / cannot-link decisions) bind the
    solver and its result (:class:`Constraints`).

    With ``dask_address`` (a Dask scheduler, ``tcp://host:8786``) or an
    ``engine``, blocks, scoring and solving run on that engine's workers; the
    clusters are the same as the local engine's (tests/integration/linkage/test_distributed.py).
    """
    versions = {(e.schema_version, e.key_id) for e in encodings}
    if len(versions) > 1:
        raise ValueError("all sources must be encoded under the same schema and linkage key")
    if dask_address and engine is None:
        from linkage.distributed import DaskEngine

        with DaskEngine(dask_address) as dask_engine:
            return link(encodings, match_threshold=match_threshold, review_threshold=review_threshold, model=model,
                        progress=progress, engine=dask_engine, constraints=constraints)
    say = progress or (lambda _msg: None)
    say("候補ペアを生成しています")
    passes: list[PassStats] = []
    sa, ia, sb, ib = candidate_pairs(encodings, passes=passes, engine=engine)
    say("重みを推定しています")
    model = model or fit_model(encodings)
    say("候補ペアを採点しています")
    pairs = score_pairs(encodings, sa, ia, sb, ib, model, engine=engine)
    if constraints:
        bind_weights(pairs, constraints)
    say("クラスタを確定しています")
    if engine is not None and engine.solves_components:
        clusters = solve_components(encodings, pairs, match_threshold, engine)
    else:
        clusters = solve(encodings, pairs, match_threshold)
    if constraints:
        clusters = enforce_constraints(clusters, pairs, constraints)
    return LinkResult(clusters, pairs, model, match_threshold, review_threshold, len(sa), passes)


def _position_keys(sa: np.ndarray, ia: np.ndarray, sb: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """One 16-byte value per unordered pair of positions, so numpy matches whole pairs exactly."""
    a = (np.asarray(sa, dtype=np.int64) << 32) | np.asarray(ia, dtype=np.int64)
    b = (np.asarray(sb, dtype=np.int64) << 32) | np.asarray(ib, dtype=np.int64)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return np.ascontiguousarray(np.stack([lo, hi], axis=1)).view(np.dtype((np.void, 16))).ravel()


def bind_weights(pairs: ScoredPairs, constraints: Constraints) -> None:
    """Set the weight of every constrained candidate pair to FORCED_LINK or FORBIDDEN (in place)."""
    if not len(pairs.weight):
        return
    keys = _position_keys(pairs.source_a, pairs.index_a, pairs.source_b, pairs.index_b)
    for chosen, weight in ((constraints.must_link, FORCED_LINK), (constraints.cannot_link, FORBIDDEN)):
        if not len(chosen):
            continue
        arr = np.asarray([(a[0], a[1], b[0], b[1]) for a, b in chosen], dtype=np.int64)
        pairs.weight[np.isin(keys, _position_keys(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]))] = weight


def enforce_constraints(clusters: list[list[Position]], pairs: ScoredPairs,
                        constraints: Constraints) -> list[list[Position]]:
    """Clusters that respect ``constraints``: must-link pairs merged, then cannot-link pairs split.

    A cluster that holds a cannot-link pair (joined through a third record)
    loses the record of that pair with the weaker evidence (sum of its
    weights) to the rest of the cluster; that record becomes a singleton.
    """
    if not constraints:
        return clusters
    groups = [set(c) for c in clusters]
    home = {m: g for g in groups for m in g}
    for a, b in constraints.must_link:
        if home[a] is not home[b]:
            merged = home[a] | home[b]
            groups = [g for g in groups if g is not home[a] and g is not home[b]] + [merged]
            for m in merged:
                home[m] = merged
    for a, b in constraints.cannot_link:
        group = home[a]
        if b in group:
            leaving = min((a, b), key=lambda m: (_evidence(pairs, m, group - {m}), m))
            group.discard(leaving)
            alone = {leaving}
            groups.append(alone)
            home[leaving] = alone
    return [sorted(g) for g in groups if g]


def _evidence(pairs: ScoredPairs, member: Position, others: set[Position]) -> float:
    """Sum of the weights between ``member`` and ``others`` (a forced link counts as overwhelming evidence)."""
    mine = ((pairs.source_a == member[0]) & (pairs.index_a == member[1])) | ((pairs.source_b == member[0]) & (pairs.index_b == member[1]))
    total = 0.0
    for k in np.flatnonzero(mine).tolist():
        a = (int(pairs.source_a[k]), int(pairs.index_a[k]))
        other = (int(pairs.source_b[k]), int(pairs.index_b[k])) if a == member else a
        w = float(pairs.weight[k])
        if other in others and w > FORBIDDEN:
            total += w
    return total
