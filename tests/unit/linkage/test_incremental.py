"""Incremental linkage gives the persons a full relink gives on the same data (same model and LSH positions)."""

from __future__ import annotations

import numpy as np
import pytest

import linkage.incremental
import linkage.match
from linkage.blocking import SplitConfig
from linkage.encode import encode_sources
from linkage.incremental import LinkState, link_full, link_incremental
from linkage.record import CanonicalRecord
from synthetic import generate_town

SECRET = b"test secret for incremental, 32b"


def _encode(rows_by_source):
    sources = [[CanonicalRecord.from_mapping(r) for r in rows] for rows in rows_by_source.values()]
    encoded = encode_sources(sources, SECRET, "k")
    tokens = [[sources[s][i].record_id for i in idx] for s, (_e, idx, _err) in enumerate(encoded)]
    return list(rows_by_source), tokens, [e for e, _, _ in encoded]


def _persons(names, tokens, clusters):
    return sorted(tuple(sorted((names[s], tokens[s][r]) for s, r in c)) for c in clusters)


@pytest.fixture(params=["town blocks", "large blocks split"])
def split(request, monkeypatch):
    """As configured, and with large birth-date blocks from 12 records on, so the split-by-name path runs too."""
    if request.param == "large blocks split":
        small = SplitConfig(max_block=12)
        monkeypatch.setattr(linkage.match, "SPLIT", small)
        monkeypatch.setattr(linkage.incremental, "SPLIT", small)
    return request.param


def test_incremental_equals_full_relink_on_the_same_data(split):
    town = generate_town(n_children=1200, seed=21)
    day1 = {k: list(v) for k, v in town.sources.items()}
    names, tokens, enc = _encode(day1)
    first, state = link_full(names, tokens, enc)
    # The state survives a round trip through its file form.
    state = LinkState.from_bytes(state.to_bytes())

    # Next day: school drops 30 pupils, residents' records change (moves, name corrections), NPO gains new people.
    rng = np.random.default_rng(4)
    day2 = {k: list(v) for k, v in day1.items()}
    day2["school"] = day2["school"][30:]
    for i in rng.choice(len(day2["residents"]), 40, replace=False):
        row = dict(day2["residents"][i])
        row["address"] = row.get("address", "") + "1"
        if i % 2:
            row["given_name_kana"] = (row.get("given_name_kana") or "") + "ア"
        day2["residents"][i] = row
    donors = generate_town(n_children=400, seed=99).sources["npo"]
    day2["npo"] = day2["npo"] + [dict(r, record_id="new-" + r["record_id"]) for r in donors]
    names2, tokens2, enc2 = _encode(day2)

    inc, inc_state, figures = link_incremental(names2, tokens2, enc2, state)
    full, _ = link_full(names2, tokens2, enc2, model=state.model, positions=state.positions)
    if split == "large blocks split":
        assert any(p.name == "large birth-date blocks × name" and p.compared for p in full.passes)
    assert _persons(names2, tokens2, inc.clusters) == _persons(names2, tokens2, full.clusters)
    # Pairs linked below the threshold (lone pairs) are among them, and depend on every pair of their records.
    assert linkage.match.lone_pairs(full.pairs, full.match_threshold).any()
    # Records marked unchanged sit, whole clusters at a time, in clusters the first run had too.
    before = set(_persons(names, tokens, first.clusters))
    kept = 0
    for c in inc.clusters:
        marks = {bool(inc.unchanged[s][r]) for s, r in c}
        assert len(marks) == 1
        if marks == {True}:
            kept += 1
            assert tuple(sorted((names2[s], tokens2[s][r]) for s, r in c)) in before
    assert 0 < kept < len(inc.clusters)
    assert figures["changed_records"] >= 40 + len(donors) - 5  # a donor row may not encode
    assert len(donors) > 10
    assert 0 < figures["components_resolved"] < sum(len(c) > 1 for c in full.clusters)
    # The review queue is the same too.
    def queue(r, names, tokens):
        q = r.review_queue()
        p = r.pairs
        return sorted(((names[p.source_a[i]], tokens[p.source_a[i]][p.index_a[i]]), (names[p.source_b[i]], tokens[p.source_b[i]][p.index_b[i]]))
                      for i in q)
    assert queue(inc, names2, tokens2) == queue(full, names2, tokens2)

    # A second day on top of the incremental state still agrees.
    day3 = {k: list(v) for k, v in day2.items()}
    day3["maternal"] = day3["maternal"][:-25]
    names3, tokens3, enc3 = _encode(day3)
    inc3, _, _ = link_incremental(names3, tokens3, enc3, inc_state)
    full3, _ = link_full(names3, tokens3, enc3, model=state.model, positions=state.positions)
    assert _persons(names3, tokens3, inc3.clusters) == _persons(names3, tokens3, full3.clusters)
