"""Multi-source matching: anonlink candidate generation, second-stage scoring, anonlink solving.

read → validate → normalise → encode happen before; here:

1. candidates: keyed birth-date blocks, and inside each block anonlink's
   accelerated Dice on the written name and on the reading separately (a
   loose threshold: the second stage decides); records without a usable
   birth date are compared with every record of the other sources;
2. score: per-field similarities (``compare``) weighed by a Fellegi–Sunter
   model (``score``) whose u-probabilities are fitted on random pairs of
   this very run;
3. solve: anonlink's probabilistic greedy solver over the pairs above the
   match threshold, at most one record per source in a cluster.
"""

from __future__ import annotations

import os
from array import array
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Callable, Sequence

import numpy as np
from anonlink.similarities import dice_coefficient_accelerated
from anonlink.solving import probabilistic_greedy_solve
from bitarray import bitarray

from linkage.compare import PairSimilarities, compare_pairs
from linkage.encode import Encodings
from linkage.schema import EncodingSchema
from linkage.score import ScoringModel

#: Total weight at or above which a pair is a match (measured: README, "Quality").
MATCH_THRESHOLD = 12.0
#: Pairs between this and MATCH_THRESHOLD go to clerical review.
REVIEW_THRESHOLD = 8.0
#: Loose Dice threshold on the written name or the reading for candidate generation.
CANDIDATE_THRESHOLD = 0.45
#: Random pairs drawn to fit the u-probabilities.
U_SAMPLE = 200_000
#: Two matches of one record into one source closer than this (bits) are ambiguous.
AMBIGUITY_MARGIN = 3.0
#: Solver: share of pairwise evidence needed to merge two groups.
MERGE_THRESHOLD = 0.5


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

    def review_queue(self) -> np.ndarray:
        """Indices into ``pairs`` for clerical review, best first.

        The band below the match threshold and the ambiguous matches, leaving
        out pairs whose two records are both already linked into each other's
        source: a person has to decide only where a decision can change a cluster.
        """
        w = self.pairs.weight
        band = (w >= self.review_threshold) & (w < self.match_threshold)
        candidates = np.flatnonzero(band | ambiguous(self.pairs, self.match_threshold))
        sources_of: dict[tuple[int, int], frozenset[int]] = {}
        for members in self.clusters:
            srcs = frozenset(s for s, _ in members)
            for m in members:
                sources_of[m] = srcs
        p = self.pairs
        keep = [
            i
            for i in candidates
            if not (
                int(p.source_b[i]) in sources_of[(int(p.source_a[i]), int(p.index_a[i]))]
                and int(p.source_a[i]) in sources_of[(int(p.source_b[i]), int(p.index_b[i]))]
            )
        ]
        keep_arr = np.asarray(keep, dtype=np.int64)
        return keep_arr[np.argsort(-w[keep_arr], kind="stable")]


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


def _blocks_of(enc: Encodings) -> dict[tuple[int, int], np.ndarray]:
    """Record indices per (blocking key, token); records without any token are wildcards."""
    out: dict[tuple[int, int], np.ndarray] = {}
    for k in range(enc.blocks.shape[1]):
        col = enc.blocks[:, k]
        idx = np.flatnonzero(col)
        order = idx[np.argsort(col[idx], kind="stable")]
        values = col[order]
        cuts = np.flatnonzero(values[1:] != values[:-1]) + 1
        for chunk in np.split(order, cuts):
            if len(chunk):
                out[(k, int(col[chunk[0]]))] = chunk
    return out


# Worker processes are forked after this is set, so they share the datasets
# copy-on-write instead of receiving them through a pipe.
_SHARED: dict = {}
_SPAN = np.int64(1 << 31)


def _compare_tasks(tasks: list[tuple[int, np.ndarray, int, np.ndarray]]) -> np.ndarray:
    datasets, threshold, offsets = _SHARED["datasets"], _SHARED["threshold"], _SHARED["offsets"]
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
                found.append((offsets[s] + a) * _SPAN + offsets[t] + b)
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


def _run_parallel(fn, shares: list, workers: int) -> list:
    if workers <= 1 or len(shares) <= 1:
        return [fn(share) for share in shares]
    with get_context("fork").Pool(len(shares)) as pool:
        return pool.map(fn, shares)


def candidate_pairs(
    encodings: Sequence[Encodings], threshold: float | None = None, workers: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(source_a, index_a, source_b, index_b) for every candidate pair, source_a < source_b.

    Two records are compared when they share a keyed birth-date block (or one
    of them has no usable birth date); they are candidates when their written
    names or their readings reach ``threshold`` (anonlink's Dice). The blocks
    are dealt to ``workers`` processes.
    """
    workers = workers or min(2, os.cpu_count() or 1)
    parts = _first_stage_parts(encodings[0].schema)
    if threshold is None:
        threshold = encodings[0].schema.document.get("matching", {}).get("candidateThreshold", CANDIDATE_THRESHOLD)
    blocks = [_blocks_of(e) for e in encodings]
    wild = [np.flatnonzero(~(e.blocks != 0).any(axis=1)) for e in encodings]
    tasks: list[tuple[int, np.ndarray, int, np.ndarray]] = []
    for s in range(len(encodings)):
        for t in range(s + 1, len(encodings)):
            for key, rows_s in blocks[s].items():
                rows_t = blocks[t].get(key)
                if rows_t is not None:
                    tasks.append((s, rows_s, t, rows_t))
            # Records without a usable birth date meet every record of the other source.
            if len(wild[s]):
                tasks.append((s, wild[s], t, np.arange(len(encodings[t]))))
            if len(wild[t]):
                tasks.append((s, np.setdiff1d(np.arange(len(encodings[s])), wild[s]), t, wild[t]))
    offsets = np.cumsum([0] + [len(e) for e in encodings]).astype(np.int64)
    if offsets[-1] >= _SPAN:
        raise ValueError(f"too many records for one linkage run ({offsets[-1]:,})")
    _SHARED.update(datasets=[[_bitarrays(e, p) for p in parts] for e in encodings], threshold=threshold, offsets=offsets)
    try:
        found = _run_parallel(_compare_tasks, _spread(tasks, workers), workers)
    finally:
        _SHARED.clear()
    # A pair found through several blocks or both parts counts once.
    key = np.unique(np.concatenate(found + [np.zeros(0, dtype=np.int64)]))
    ga, gb = key // _SPAN, key % _SPAN
    sa = np.searchsorted(offsets, ga, side="right") - 1
    sb = np.searchsorted(offsets, gb, side="right") - 1
    return sa.astype(np.int32), ga - offsets[sa], sb.astype(np.int32), gb - offsets[sb]


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


def _score_share(share: list[tuple[int, int, np.ndarray]]) -> list[tuple[np.ndarray, PairSimilarities]]:
    encodings, ia, ib = _SHARED["encodings"], _SHARED["ia"], _SHARED["ib"]
    return [(sel, compare_pairs(encodings[s], ia[sel], encodings[t], ib[sel])) for s, t, sel in share]


def score_pairs(
    encodings: Sequence[Encodings],
    sa: np.ndarray,
    ia: np.ndarray,
    sb: np.ndarray,
    ib: np.ndarray,
    model: ScoringModel,
    workers: int | None = None,
) -> ScoredPairs:
    """Compare and weigh candidate pairs, in slices spread over ``workers`` processes."""
    workers = workers or min(2, os.cpu_count() or 1)
    values = np.full((len(sa), 6), np.nan)
    detail = np.zeros(len(sa), dtype=np.int8)
    slices = []
    for s in np.unique(sa):
        for t in np.unique(sb[sa == s]):
            sel = np.flatnonzero((sa == s) & (sb == t))
            slices.extend((int(s), int(t), part) for part in np.array_split(sel, max(1, len(sel) // 100_000)))
    shares = [slices[w::workers] for w in range(workers)] if len(sa) > 50_000 else [slices]
    _SHARED.update(encodings=encodings, ia=ia, ib=ib)
    try:
        results = _run_parallel(_score_share, [sh for sh in shares if sh], workers)
    finally:
        _SHARED.clear()
    for share in results:
        for sel, sims in share:
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


def solve(encodings: Sequence[Encodings], pairs: ScoredPairs, match_threshold: float) -> list[list[tuple[int, int]]]:
    """Clusters from the unambiguous pairs at or above ``match_threshold``; singletons for the rest."""
    keep = np.flatnonzero((pairs.weight >= match_threshold) & ~ambiguous(pairs, match_threshold))
    order = keep[np.argsort(-pairs.weight[keep], kind="stable")]
    # anonlink wants similarities in decreasing order; a logistic map keeps the order.
    sims = array("d", (1.0 / (1.0 + np.exp(-pairs.weight[order] / 4.0))).tolist())
    dset = (array("I", pairs.source_a[order].tolist()), array("I", pairs.source_b[order].tolist()))
    recs = (array("I", pairs.index_a[order].tolist()), array("I", pairs.index_b[order].tolist()))
    groups = probabilistic_greedy_solve((sims, dset, recs), merge_threshold=MERGE_THRESHOLD, deduplicated=True)
    clusters: list[list[tuple[int, int]]] = []
    seen: set[tuple[int, int]] = set()
    for g in groups:
        members = sorted((int(d), int(r)) for d, r in g)
        clusters.append(members)
        seen.update(members)
    for s, enc in enumerate(encodings):
        for r in range(len(enc)):
            if (s, r) not in seen:
                clusters.append([(s, r)])
    return clusters


def link(
    encodings: Sequence[Encodings],
    *,
    match_threshold: float = MATCH_THRESHOLD,
    review_threshold: float = REVIEW_THRESHOLD,
    model: ScoringModel | None = None,
    progress: Callable[[str], None] | None = None,
) -> LinkResult:
    """Link any number of sources; every record ends in exactly one cluster."""
    versions = {(e.schema_version, e.key_id) for e in encodings}
    if len(versions) > 1:
        raise ValueError("all sources must be encoded under the same schema and linkage key")
    say = progress or (lambda _msg: None)
    say("候補ペアを生成しています")
    sa, ia, sb, ib = candidate_pairs(encodings)
    say("重みを推定しています")
    model = model or fit_model(encodings)
    say("候補ペアを採点しています")
    pairs = score_pairs(encodings, sa, ia, sb, ib, model)
    say("クラスタを確定しています")
    clusters = solve(encodings, pairs, match_threshold)
    return LinkResult(clusters, pairs, model, match_threshold, review_threshold, len(sa))
