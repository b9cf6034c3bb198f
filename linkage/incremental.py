"""Incremental linkage: link a day's new and changed records against the last run, with the same result as a full relink.

A full run (``link_full``) fits the model, draws the LSH positions and keeps
a :class:`LinkState`: the model and positions, a digest of every record's
encoding, the scored pairs the solver and the review queue can read (weight
at or above the review threshold, or the lone-pair floor of
``linkage.match.lone_pairs`` where that is lower) and each record's cluster. An incremental
run (``link_incremental``) then

1. finds the records that are new or whose encoding changed, and those gone;
2. keeps the stored pairs between unchanged records as they were (same
   encodings, same model: same weights);
3. generates, with the same blocking passes and first-stage tests as a full
   run (block-size caps computed on all records), only the candidate pairs
   that touch a changed record, and scores them with the stored model;
4. re-solves only the connected components that hold a changed record or
   a partner of one (a record with a pair to it, whose lone pairs may
   change), or held such a record before; every other component is the
   same graph as before, so its clusters are kept;
5. marks the records whose cluster is exactly the previous run's
   (``LinkResult.unchanged``) and lists the previous records that changed or
   left (``LinkResult.departed``), so the gateway re-assigns persons only
   where something moved.

So, for the same data, model and LSH positions, the clusters equal those of
a full relink (tests/unit/linkage/test_incremental.py). A full run stays the way
to refit the u-probabilities to a changed population.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from linkage.blocking import (
    LshConfig,
    PassStats,
    _pairs_within_blocks,
    _popcount64,
    _to_global,
    band_keys,
    component_labels,
    informative_columns,
    large_tokens,
    name_segments,
    offsets_of,
    pair_key,
    sample_positions,
    split_block_pairs,
    split_keys,
    undated_pairs,
    unique_sorted,
)
from linkage.compare import PairSimilarities
from linkage.encode import Encodings
from linkage.match import (
    CANDIDATE_THRESHOLD,
    LONE_MARGIN,
    LSH,
    LSH_DICE,
    MATCH_THRESHOLD,
    REVIEW_THRESHOLD,
    SPLIT,
    Engine,
    LinkResult,
    ScoredPairs,
    candidate_keys,
    cluster_pairs,
    first_stage,
    fit_model,
    lone_pairs,
    score_pairs,
    solve,
    solver_mask,
    take_pairs,
    with_singletons,
)
from linkage.score import ScoringModel

#: Candidate pairs listed at once when the changed records meet their blocks.
_LISTED_PAIRS = 2_000_000


@dataclass
class LinkState:
    """What an incremental run needs from the previous run (no identities: tokens, digests, weights)."""

    names: list[str]
    tokens: list[list[str]]
    digests: list[np.ndarray]
    model: ScoringModel
    positions: np.ndarray
    pairs: ScoredPairs
    cluster: list[np.ndarray]

    def to_bytes(self) -> bytes:
        """An ``.npz`` image of the state (plain arrays and JSON, no pickles)."""
        meta = {"names": self.names, "tokens": self.tokens,
                "m": {k: list(v) for k, v in self.model.m.items()}, "u": {k: list(map(float, v)) for k, v in self.model.u.items()}}
        arrays = {"positions": self.positions, "sa": self.pairs.source_a, "ia": self.pairs.index_a, "sb": self.pairs.source_b,
                  "ib": self.pairs.index_b, "w": self.pairs.weight, "values": self.pairs.similarities.values,
                  "detail": self.pairs.similarities.date_detail}
        for s in range(len(self.names)):
            arrays[f"digest{s}"] = self.digests[s]
            arrays[f"cluster{s}"] = self.cluster[s]
        buf = io.BytesIO()
        np.savez(buf, meta=np.frombuffer(json.dumps(meta, ensure_ascii=False).encode(), dtype=np.uint8), **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "LinkState":
        """Read what :meth:`to_bytes` wrote."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            model = ScoringModel(m={k: tuple(v) for k, v in meta["m"].items()}, u={k: np.asarray(v) for k, v in meta["u"].items()})
            n = len(meta["names"])
            pairs = ScoredPairs(z["sa"], z["ia"], z["sb"], z["ib"], PairSimilarities(z["values"], z["detail"]), z["w"])
            return cls(meta["names"], meta["tokens"], [z[f"digest{s}"] for s in range(n)], model, z["positions"], pairs,
                       [z[f"cluster{s}"] for s in range(n)])


def digests(enc: Encodings) -> np.ndarray:
    """A 64-bit digest of each record's encoding, presence flags and blocking tokens (what linkage reads).

    It only tells a changed record from an unchanged one (never leaves the
    gateway): a multiply-xorshift mix over the row's 64-bit words, in numpy.
    """
    n = len(enc)
    width = enc.bits.shape[1]
    pad = (-width) % 8
    bits = np.ascontiguousarray(np.pad(enc.bits, ((0, 0), (0, pad)))) if pad else np.ascontiguousarray(enc.bits)
    words = np.concatenate([bits.view("<u8").reshape(n, -1), enc.present.astype(np.uint64).reshape(n, 1),
                            enc.blocks.astype(np.uint64).reshape(n, -1)], axis=1)
    h = np.full(n, 0x9E3779B97F4A7C15, dtype=np.uint64)
    mult = np.uint64(0xBF58476D1CE4E5B9)
    for j in range(words.shape[1]):
        h = (h ^ words[:, j]) * mult
        h ^= h >> np.uint64(31)
    return h


def _kept_weight(match_threshold: float, review_threshold: float) -> float:
    """Pairs at or above this weight are kept between runs: what the review queue and the solver (lone pairs too) read."""
    return min(review_threshold, match_threshold - LONE_MARGIN)


def _state(names, tokens, encodings, model, positions, result_pairs, clusters, match_threshold, review_threshold,
           record_digests=None) -> LinkState:
    keep = np.flatnonzero(result_pairs.weight >= _kept_weight(match_threshold, review_threshold))
    label = [np.full(len(e), -1, dtype=np.int64) for e in encodings]
    for c, members in enumerate(clusters):
        for s, r in members:
            label[s][r] = c
    record_digests = record_digests or [digests(e) for e in encodings]
    return LinkState(list(names), [list(t) for t in tokens], record_digests, model, positions,
                     take_pairs(result_pairs, keep), label)


def link_full(names: Sequence[str], tokens: Sequence[Sequence[str]], encodings: Sequence[Encodings], *,
              model: ScoringModel | None = None, positions: np.ndarray | None = None,
              lsh: LshConfig = LSH, match_threshold: float = MATCH_THRESHOLD,
              review_threshold: float = REVIEW_THRESHOLD, engine: Engine | None = None) -> tuple[LinkResult, LinkState]:
    """A full run (model fitted unless given, LSH positions drawn unless given) and the state to continue from.

    Blocks and scoring run on the ``engine`` (a shell's process pool) when given.
    """
    if positions is None:
        positions = sample_positions(informative_columns([e.bits for e in encodings], lsh.min_share, lsh.max_share), lsh)
    keys, passes = candidate_keys(encodings, CANDIDATE_THRESHOLD, lsh, engine, positions=positions)
    sa, ia, sb, ib = split_keys(keys, offsets_of([len(e) for e in encodings]))
    model = model or fit_model(encodings)
    pairs = score_pairs(encodings, sa, ia, sb, ib, model, engine=engine)
    clusters = solve(encodings, pairs, match_threshold)
    result = LinkResult(clusters, pairs, model, match_threshold, review_threshold, len(sa), passes)
    return result, _state(names, tokens, encodings, model, positions, pairs, clusters, match_threshold, review_threshold)


def link_incremental(names: Sequence[str], tokens: Sequence[Sequence[str]], encodings: Sequence[Encodings], state: LinkState,
                     *, lsh: LshConfig = LSH, match_threshold: float = MATCH_THRESHOLD,
                     review_threshold: float = REVIEW_THRESHOLD) -> tuple[LinkResult, LinkState, dict]:
    """Link against ``state``: work on the changed records and the components they touch; returns figures too."""
    if list(names) != state.names:
        raise ValueError("the sources changed since the last run: a full run is needed")
    sizes = [len(e) for e in encodings]
    offsets = offsets_of(sizes)
    model = state.model
    # 1. What changed.
    changed = [np.ones(n, dtype=bool) for n in sizes]
    old_index: list[np.ndarray] = []  # new record -> old record index (-1: new or changed)
    old_gone = []  # old records that left or changed
    new_digests = [digests(e) for e in encodings]
    for s in range(len(encodings)):
        where = {t: i for i, t in enumerate(state.tokens[s])}
        idx = np.fromiter((where.get(t, -1) for t in tokens[s]), np.int64, sizes[s])
        same = idx >= 0
        same[same] = state.digests[s][idx[same]] == new_digests[s][same]
        changed[s] = ~same
        old_index.append(np.where(same, idx, -1))
        kept_old = np.zeros(len(state.tokens[s]), dtype=bool)
        kept_old[idx[same]] = True
        old_gone.append(~kept_old)
    # 2. Stored pairs between unchanged records, renumbered.
    new_of_old = []
    for s in range(len(encodings)):
        m = np.full(len(state.tokens[s]), -1, dtype=np.int64)
        ok = old_index[s] >= 0
        m[old_index[s][ok]] = np.flatnonzero(ok)
        new_of_old.append(m)
    op = state.pairs
    old_offsets = offsets_of([len(t) for t in state.tokens])
    flat = np.concatenate(new_of_old) if new_of_old else np.zeros(0, dtype=np.int64)
    na = flat[old_offsets[op.source_a] + op.index_a] if len(op.weight) else np.zeros(0, dtype=np.int64)
    nb = flat[old_offsets[op.source_b] + op.index_b] if len(op.weight) else np.zeros(0, dtype=np.int64)
    kept = np.flatnonzero((na >= 0) & (nb >= 0))
    kept_pairs = ScoredPairs(op.source_a[kept], na[kept], op.source_b[kept], nb[kept],
                             PairSimilarities(op.similarities.values[kept], op.similarities.date_detail[kept]), op.weight[kept])
    # 3. Candidate pairs touching a changed record, scored with the stored model.
    keys = _changed_candidates(encodings, changed, offsets, state.positions, lsh)
    sa, ia, sb, ib = split_keys(keys, offsets)
    fresh = score_pairs(encodings, sa, ia, sb, ib, model)
    fresh = take_pairs(fresh, np.flatnonzero(fresh.weight >= _kept_weight(match_threshold, review_threshold)))
    pairs = _concat(kept_pairs, fresh)
    # 4. Re-solve the touched components only. Whether a pair is lone depends on every pair of its
    # records, so an unchanged record that gains or loses a pair (a partner of a change) counts as touched.
    partners_old = _partners(state.pairs, [len(t) for t in state.tokens], old_gone)
    partners_new = _partners(fresh, sizes, changed)
    for s in range(len(encodings)):
        ok = old_index[s] >= 0
        partners_old[s][old_index[s][ok]] |= partners_new[s][ok]
    touched_old = _touched_old_components(state, [old_gone[s] | partners_old[s] for s in range(len(encodings))],
                                          match_threshold)
    touched = [changed[s] | partners_new[s] for s in range(len(encodings))]
    for s in range(len(encodings)):
        ok = old_index[s] >= 0
        touched[s][ok] |= touched_old[s][old_index[s][ok]]
    lone = lone_pairs(pairs, match_threshold)
    label = record_components(pairs, sizes, match_threshold, lone)
    hit = np.unique(label[np.concatenate(touched)])
    hit = hit[hit >= 0]
    in_touched = np.isin(label, hit)
    ga = offsets[pairs.source_a] + pairs.index_a
    # Whole components only, so solving them together equals solving each alone.
    chosen = np.flatnonzero(in_touched[ga] & solver_mask(pairs, match_threshold, lone))
    clusters: list[list[tuple[int, int]]] = cluster_pairs(take_pairs(pairs, chosen), match_threshold, lone[chosen])
    resolved = int(len(hit))
    in_touched_component = [in_touched[offsets[s] : offsets[s + 1]] for s in range(len(sizes))]
    # Untouched records keep their previous clusters (each lies inside one untouched component).
    by_label: dict[int, list[tuple[int, int]]] = {}
    for s in range(len(encodings)):
        rows = np.flatnonzero(~in_touched_component[s] & ~changed[s])
        labels = state.cluster[s][old_index[s][rows]]
        for r, lab in zip(rows.tolist(), labels.tolist()):
            by_label.setdefault(lab, []).append((s, r))
    clusters.extend(sorted(c) for c in by_label.values() if len(c) > 1)
    clusters = with_singletons(encodings, clusters)
    # Records in no re-solved component and touching no change keep their previous cluster exactly
    # (a cluster is wholly unchanged or wholly re-solved): the gateway rewrites only the others.
    unchanged = [~in_touched_component[s] & ~touched[s] for s in range(len(sizes))]
    departed = [[state.tokens[s][i] for i in np.flatnonzero(old_gone[s]).tolist()] for s in range(len(sizes))]
    result = LinkResult(clusters, pairs, model, match_threshold, review_threshold, len(keys), [PassStats("incremental", 0, keys)],
                        unchanged, departed)
    figures = {"changed_records": int(sum(c.sum() for c in changed)), "removed_records": int(sum(g.sum() for g in old_gone)),
               "new_candidate_pairs": int(len(keys)), "components_resolved": resolved}
    return result, _state(names, tokens, encodings, model, state.positions, pairs, clusters, match_threshold, review_threshold,
                          new_digests), figures


def _concat(a: ScoredPairs, b: ScoredPairs) -> ScoredPairs:
    sims = PairSimilarities(np.concatenate([a.similarities.values, b.similarities.values]),
                            np.concatenate([a.similarities.date_detail, b.similarities.date_detail]))
    out = ScoredPairs(np.concatenate([a.source_a, b.source_a]), np.concatenate([a.index_a, b.index_a]),
                      np.concatenate([a.source_b, b.source_b]), np.concatenate([a.index_b, b.index_b]), sims,
                      np.concatenate([a.weight, b.weight]))
    # The order a full run has (by pair key), so ties in weight are broken the same way.
    key = pair_key(np.asarray(out.source_a, np.int64) * (1 << 24) + out.index_a, np.asarray(out.source_b, np.int64) * (1 << 24) + out.index_b)
    return take_pairs(out, np.argsort(key, kind="stable"))


def record_components(pairs: ScoredPairs, sizes: Sequence[int], match_threshold: float,
                      lone: np.ndarray | None = None) -> np.ndarray:
    """Connected-component label of every record (global numbering) in the graph the solver reads; -1 = in none."""
    offsets = offsets_of(sizes)
    n = int(offsets[-1])
    live = np.flatnonzero(solver_mask(pairs, match_threshold, lone))
    ga = offsets[pairs.source_a[live]] + pairs.index_a[live]
    gb = offsets[pairs.source_b[live]] + pairs.index_b[live]
    label = component_labels(n, ga, gb)
    in_graph = np.zeros(n, dtype=bool)
    in_graph[ga] = True
    in_graph[gb] = True
    return np.where(in_graph, label, -1)


def _partners(pairs: ScoredPairs, sizes: Sequence[int], marked: list[np.ndarray]) -> list[np.ndarray]:
    """Per source, the records with a pair to a ``marked`` record (per source, a mask)."""
    offsets = offsets_of(sizes)
    flat = np.concatenate(marked) if marked else np.zeros(0, dtype=bool)
    out = np.zeros(int(offsets[-1]), dtype=bool)
    if len(pairs.weight):
        ga = offsets[pairs.source_a] + pairs.index_a
        gb = offsets[pairs.source_b] + pairs.index_b
        out[gb[flat[ga]]] = True
        out[ga[flat[gb]]] = True
    out &= ~flat
    return [out[offsets[s] : offsets[s + 1]] for s in range(len(sizes))]


def _touched_old_components(state: LinkState, gone: list[np.ndarray], match_threshold: float) -> list[np.ndarray]:
    """Per source, old records whose old component held a record that changed or left."""
    sizes = [len(t) for t in state.tokens]
    label = record_components(state.pairs, sizes, match_threshold)
    hit = np.unique(label[np.concatenate(gone)])
    touched = np.isin(label, hit[hit >= 0])
    offsets = offsets_of(sizes)
    return [touched[offsets[s] : offsets[s + 1]] for s in range(len(sizes))]


def _changed_candidates(encodings: Sequence[Encodings], changed: list[np.ndarray], offsets: np.ndarray,
                        positions: np.ndarray, lsh: LshConfig) -> np.ndarray:
    """Pair keys of the candidate pairs with at least one changed record (the full run's rules, restricted)."""
    n_src = len(encodings)
    tasks: list[tuple[int, np.ndarray, int, np.ndarray]] = []
    blocks = [e.blocks for e in encodings]
    segments = name_segments(encodings[0].schema)
    # Large blocks (sizes over all records, as in a full run) are split by name below, not listed whole.
    large = large_tokens(blocks, SPLIT.max_block) if segments else None
    # The tokens the changed records carry, per blocking key.
    wanted: list[np.ndarray] = []
    for k in range(encodings[0].blocks.shape[1]):
        values = np.unique(np.concatenate([e.blocks[changed[s], k] for s, e in enumerate(encodings)]))
        values = values[values != 0]
        if large is not None:
            values = values[~np.isin(values, large[k])]
        wanted.append(values)
    # Each source's tokens sorted once per key (numpy): a block is a slice of that order, in
    # ascending record order as ``keyed_blocks`` gives it, found without building every block.
    spans = []
    for e in encodings:
        per_key = []
        for k, values in enumerate(wanted):
            order = np.argsort(e.blocks[:, k], kind="stable")
            col = e.blocks[order, k]
            per_key.append((order, np.searchsorted(col, values, "left"), np.searchsorted(col, values, "right")))
        spans.append(per_key)
    for s in range(n_src):
        for t in range(s + 1, n_src):
            for k in range(len(wanted)):
                order_s, lo_s, hi_s = spans[s][k]
                order_t, lo_t, hi_t = spans[t][k]
                for j in np.flatnonzero((hi_s > lo_s) & (hi_t > lo_t)).tolist():
                    rs, rt = order_s[lo_s[j]:hi_s[j]], order_t[lo_t[j]:hi_t[j]]
                    cs, ct = rs[changed[s][rs]], rt[changed[t][rt]]
                    if len(cs):
                        tasks.append((s, cs, t, rt))
                    if len(ct):
                        tasks.append((s, rs[~changed[s][rs]], t, ct))
            if large is not None:
                continue  # undated records meet by name (``undated_pairs``)
            wild_s = ~(encodings[s].blocks != 0).any(axis=1)
            wild_t = ~(encodings[t].blocks != 0).any(axis=1)
            all_t, all_s = np.arange(len(encodings[t])), np.arange(len(encodings[s]))
            for rows_s, rows_t in ((all_s[wild_s & changed[s]], all_t), (all_s[wild_s & ~changed[s]], all_t[changed[t]]),
                                   (all_s[~wild_s & changed[s]], all_t[wild_t]), (all_s[~wild_s & ~changed[s]], all_t[wild_t & changed[t]])):
                if len(rows_s) and len(rows_t):
                    tasks.append((s, rows_s, t, rows_t))
    # The tasks are small (changed records against their blocks): their pairs are listed and given
    # the keyed pass's test with numpy popcounts instead of one anonlink call per block.
    found: list[np.ndarray] = []
    listed: list[np.ndarray] = []
    pending = 0
    for s, rs, t, rt in tasks:
        for part in np.array_split(rs, max(1, len(rs) * len(rt) // _LISTED_PAIRS)):
            listed.append(pair_key(np.repeat(offsets[s] + part, len(rt)), np.tile(offsets[t] + rt, len(part))))
            pending += len(listed[-1])
            # Bounded memory: at most about _LISTED_PAIRS pairs are listed at a time.
            if pending >= _LISTED_PAIRS:
                cand = unique_sorted(np.concatenate(listed))
                found.append(cand[first_stage(encodings, cand, CANDIDATE_THRESHOLD)])
                listed, pending = [], 0
    if large is not None:
        bits = [e.bits for e in encodings]
        is_changed_all = np.concatenate(changed)
        listed.append(split_block_pairs(blocks, bits, segments, large, SPLIT, is_changed_all)[0])
        listed.append(undated_pairs(blocks, bits, segments, SPLIT, is_changed_all)[0])
    if listed:
        cand = unique_sorted(np.concatenate(listed))
        found.append(cand[first_stage(encodings, cand, CANDIDATE_THRESHOLD)])
    # LSH: the full run's blocks (sizes over all records), pairs with a changed end only.
    bits = [e.bits for e in encodings]
    source = np.concatenate([np.full(len(b), s, dtype=np.int32) for s, b in enumerate(bits)])
    is_changed = np.concatenate(changed)
    keys = np.concatenate([band_keys(b, positions) for b in bits]) if len(positions) else np.zeros((len(source), 0), np.uint64)
    ones = _popcount64(keys)
    lsh_found = []
    for band in range(keys.shape[1]):
        informative = np.flatnonzero(ones[:, band] >= lsh.min_ones)
        kb = keys[informative, band]
        hit = np.isin(kb, kb[is_changed[informative]])
        rows = informative[hit]
        # Blocks touching a changed record, whole (their size decides whether they count).
        pairs, _n = _pairs_within_blocks(keys[rows, band], source[rows], lsh.max_block)
        pairs = _to_global(pairs, rows)
        ga, gb = pairs // (1 << 31), pairs % (1 << 31)
        lsh_found.append(pairs[is_changed[ga] | is_changed[gb]])
    if lsh_found:
        cand = unique_sorted(np.concatenate(lsh_found))
        found.append(cand[first_stage(encodings, cand, LSH_DICE, [slice(None)])])
    if not found:
        return np.zeros(0, dtype=np.int64)
    return unique_sorted(np.concatenate(found))
