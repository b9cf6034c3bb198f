"""The shell's fork pool (``service.pools.ForkPool``) gives exactly what the linkage library gives in one process."""

from __future__ import annotations

import numpy as np
import pytest

from linkage.encode import encode_sources
from linkage.incremental import link_full
from linkage.match import link
from linkage.record import CanonicalRecord
from service import pools
from service.pools import ForkPool
from synthetic import generate_town

SECRET = b"test secret for the fork pool, 32"


@pytest.fixture(scope="module")
def sources() -> list[list[CanonicalRecord]]:
    town = generate_town(n_children=600, seed=5)
    return [[CanonicalRecord.from_mapping(r) for r in town.sources[n]] for n in town.sources]


def _canonical(clusters) -> list[tuple]:
    # The solver's cluster order is not part of its result (anonlink returns groups unordered).
    return sorted(tuple(sorted(c)) for c in clusters)


def _same_encodings(a, b) -> None:
    for (ea, ia, xa), (eb, ib, xb) in zip(a, b, strict=True):
        assert np.array_equal(ea.bits, eb.bits) and np.array_equal(ea.present, eb.present)
        assert np.array_equal(ea.blocks, eb.blocks) and np.array_equal(ia, ib)
        assert [(e.index, e.field) for e in xa] == [(e.index, e.field) for e in xb]


def test_encoding_in_the_pool_equals_encoding_in_process(sources) -> None:
    done: list[int] = []
    pooled = encode_sources(sources, SECRET, "k", runner=ForkPool(2), chunk_size=97, progress=done.append)
    _same_encodings(pooled, encode_sources(sources, SECRET, "k", chunk_size=97))
    assert sum(done) == sum(len(s) for s in sources)
    assert len(done) > 2  # many chunks, so the workers really shared them


def test_linking_in_the_pool_equals_linking_in_process(sources, monkeypatch) -> None:
    encodings = [e for e, _, _ in encode_sources(sources, SECRET, "k")]
    here = link(encodings)
    monkeypatch.setattr(pools, "SCORE_SPLIT", 0)  # split scoring over the workers even for this small town
    pooled = link(encodings, engine=ForkPool(2), model=here.model)
    assert _canonical(pooled.clusters) == _canonical(here.clusters)
    assert pooled.candidate_count == here.candidate_count > 0
    assert np.array_equal(pooled.pairs.weight, here.pairs.weight)
    assert [(p.name, p.compared) for p in pooled.passes] == [(p.name, p.compared) for p in here.passes]
    names = [f"source{i}" for i in range(len(encodings))]
    tokens = [[str(i) for i in range(len(e))] for e in encodings]
    full, _ = link_full(names, tokens, encodings, engine=ForkPool(2), model=here.model)
    in_process, _ = link_full(names, tokens, encodings, model=here.model)
    assert _canonical(full.clusters) == _canonical(in_process.clusters) and sum(len(c) > 1 for c in full.clusters) > 100
