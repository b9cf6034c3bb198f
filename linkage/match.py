"""Multi-source matching: anonlink candidate generation, second-stage scoring, anonlink solving.

read → validate → normalise → encode happen before; here:

1. candidates: anonlink's ``find_candidate_pairs`` with keyed birth-date
   blocking, on the name-and-reading part of each encoding (a loose Dice
   threshold: the second stage decides); records without a usable birth date
   are compared with every record of the other sources;
2. score: per-field similarities (``compare``) weighed by a Fellegi–Sunter
   model (``score``) whose u-probabilities are fitted on random pairs of
   this very run;
3. solve: anonlink's probabilistic greedy solver over the pairs above the
   match threshold, at most one record per source in a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from anonlink.candidate_generation import find_candidate_pairs
from anonlink.similarities import dice_coefficient_accelerated
from anonlink.solving import probabilistic_greedy_solve
from bitarray import bitarray

from linkage.compare import PairSimilarities, compare_pairs
from linkage.encode import Encodings
from linkage.schema import load_schema
from linkage.score import ScoringModel

#: Total weight at or above which a pair is a match (measured: README, "Quality").
MATCH_THRESHOLD = 12.0
#: Pairs between this and MATCH_THRESHOLD go to clerical review.
REVIEW_THRESHOLD = 4.0
#: Loose Dice threshold on the name-and-reading part for candidate generation.
CANDIDATE_THRESHOLD = 0.3
#: Random pairs drawn to fit the u-probabilities.
U_SAMPLE = 200_000
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
        """Indices into ``pairs`` whose weight lies in the clerical-review band."""
        w = self.pairs.weight
        return np.flatnonzero((w >= self.review_threshold) & (w < self.match_threshold))


def _name_part_bitarrays(enc: Encodings) -> list[bitarray]:
    schema = load_schema(enc.schema_version)
    end = schema.segment("kana_full").byte_slice.stop
    prefix = np.ascontiguousarray(enc.bits[:, :end])
    out = []
    for row in prefix:
        ba = bitarray(endian="big")
        ba.frombytes(row.tobytes())
        out.append(ba)
    return out


def candidate_pairs(
    encodings: Sequence[Encodings], threshold: float = CANDIDATE_THRESHOLD
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(source_a, index_a, source_b, index_b) for every candidate pair, source_a < source_b."""
    datasets = [_name_part_bitarrays(e) for e in encodings]
    wild = [np.flatnonzero(~(e.blocks != 0).any(axis=1)) for e in encodings]
    wild_sets = [set(w.tolist()) for w in wild]
    blocks = [e.blocks for e in encodings]

    def blocking_f(dataset_index: int, record_index: int, _hash) -> list:
        if record_index in wild_sets[dataset_index]:
            return []
        row = blocks[dataset_index][record_index]
        return [(k, int(v)) for k, v in enumerate(row) if v]

    parts_sa, parts_ia, parts_sb, parts_ib = [], [], [], []

    def add(sa, ia, sb, ib):
        parts_sa.append(np.asarray(sa, dtype=np.int32))
        parts_ia.append(np.asarray(ia, dtype=np.int64))
        parts_sb.append(np.asarray(sb, dtype=np.int32))
        parts_ib.append(np.asarray(ib, dtype=np.int64))

    _sims, (dset0, dset1), (rec0, rec1) = find_candidate_pairs(
        datasets, dice_coefficient_accelerated, threshold, blocking_f=blocking_f
    )
    add(dset0, rec0, dset1, rec1)
    # Records without a usable birth date meet every record of the other sources.
    for s, w in enumerate(wild):
        if not len(w):
            continue
        for t in range(len(datasets)):
            if t == s:
                continue
            sims, (i0, i1) = dice_coefficient_accelerated([[datasets[s][i] for i in w], datasets[t]], threshold)
            i0 = w[np.asarray(i0, dtype=np.int64)]
            i1 = np.asarray(i1, dtype=np.int64)
            if s < t:
                add(np.full(len(i0), s), i0, np.full(len(i0), t), i1)
            else:
                add(np.full(len(i0), t), i1, np.full(len(i0), s), i0)
    sa, ia, sb, ib = (np.concatenate(p) for p in (parts_sa, parts_ia, parts_sb, parts_ib))
    # A pair found through several blocks (or as a wildcard both ways) counts once.
    key = np.stack([sa.astype(np.int64), ia, sb.astype(np.int64), ib], axis=1)
    key = np.unique(key, axis=0)
    return key[:, 0].astype(np.int32), key[:, 1], key[:, 2].astype(np.int32), key[:, 3]


def fit_model(encodings: Sequence[Encodings], seed: int = 0, sample: int = U_SAMPLE) -> ScoringModel:
    """A scoring model whose u-probabilities come from random cross-source pairs."""
    rng = np.random.default_rng(seed)
    sources = [s for s, e in enumerate(encodings) if len(e)]
    sims_parts = []
    pairs = [(s, t) for i, s in enumerate(sources) for t in sources[i + 1 :]]
    if not pairs:
        return ScoringModel().fit_u(PairSimilarities(np.empty((0, 6)), np.empty(0, dtype=bool)))
    per_pair = max(1, sample // len(pairs))
    for s, t in pairs:
        ia = rng.integers(0, len(encodings[s]), per_pair)
        ib = rng.integers(0, len(encodings[t]), per_pair)
        sims_parts.append(compare_pairs(encodings[s], ia, encodings[t], ib))
    sims = PairSimilarities(
        np.concatenate([p.values for p in sims_parts]),
        np.concatenate([p.demographic_complete for p in sims_parts]),
    )
    return ScoringModel().fit_u(sims)


def score_pairs(
    encodings: Sequence[Encodings], sa: np.ndarray, ia: np.ndarray, sb: np.ndarray, ib: np.ndarray, model: ScoringModel
) -> ScoredPairs:
    """Compare and weigh candidate pairs, source pair by source pair."""
    values = np.full((len(sa), 6), np.nan)
    complete = np.zeros(len(sa), dtype=bool)
    for s in np.unique(sa):
        for t in np.unique(sb[sa == s]):
            sel = np.flatnonzero((sa == s) & (sb == t))
            sims = compare_pairs(encodings[s], ia[sel], encodings[t], ib[sel])
            values[sel] = sims.values
            complete[sel] = sims.demographic_complete
    sims = PairSimilarities(values, complete)
    return ScoredPairs(sa, ia, sb, ib, sims, model.score(sims))


def solve(encodings: Sequence[Encodings], pairs: ScoredPairs, match_threshold: float) -> list[list[tuple[int, int]]]:
    """Clusters from the pairs at or above ``match_threshold``; singletons for the rest."""
    keep = np.flatnonzero(pairs.weight >= match_threshold)
    order = keep[np.argsort(-pairs.weight[keep], kind="stable")]
    from array import array

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
