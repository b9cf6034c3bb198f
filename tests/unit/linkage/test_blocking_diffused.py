"""Blocking of tsunagu-jp/2 (``linkage.blocking.diffused_candidates``): typo'd dates still meet, the passes are
deterministic, equal a plain-Python twin, and depend on the linkage key only through the views."""

from __future__ import annotations

import itertools

import numpy as np

from linkage.blocking import (
    SPAN,
    ViewBlockingConfig,
    band_keys,
    diffused_candidates,
    nearest_pairs,
    view_lsh_pairs,
    view_sketches,
    view_words,
)
from linkage.encode import Encodings, encode_sources
from linkage.match import candidate_pairs
from linkage.record import CanonicalRecord
from linkage.salvage import salvage_birth_dates
from linkage.schema import load_schema

SECRET = b"test secret for blocking, 32 byt"
OTHER = b"another secret for blocking, 32b"
V2 = load_schema("tsunagu-jp/2")


def _child(rid: str, **change: str) -> CanonicalRecord:
    base = dict(family_name="渡辺", given_name="結菜", family_name_kana="ワタナベ", given_name_kana="ユイナ",
                birth_date="2016-03-14", sex="2", postal_code="300-1201", address="茨城県つなぐ市本町3丁目5番2号")
    return CanonicalRecord(record_id=rid, **{**base, **change})


FAMILIES = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "山本", "中村", "小林", "加藤", "吉田"]
KANA = ["サトウ", "スズキ", "タカハシ", "タナカ", "イトウ", "ヤマモト", "ナカムラ", "コバヤシ", "カトウ", "ヨシダ"]
GIVEN = [("太郎", "タロウ"), ("花子", "ハナコ"), ("翔", "ショウ"), ("陽菜", "ヒナ"), ("蓮", "レン"), ("結衣", "ユイ")]


def _others(n: int, seed: int = 0) -> list[CanonicalRecord]:
    """Children born in 2016 like the test child (its birth-year block), with other names."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        f, g = int(rng.integers(len(FAMILIES))), int(rng.integers(len(GIVEN)))
        out.append(CanonicalRecord(
            record_id=f"X{i}", family_name=FAMILIES[f], given_name=GIVEN[g][0], family_name_kana=KANA[f],
            given_name_kana=GIVEN[g][1], birth_date=f"2016-{1 + i % 12:02d}-{1 + i % 28:02d}", sex=str(1 + i % 2),
            postal_code="300-1201", address=f"茨城県つなぐ市本町{1 + i % 9}丁目{1 + i % 20}番{1 + i % 7}号"))
    return out


def _encode(sources, secret=SECRET) -> list[Encodings]:
    # As ``tsunagu link`` does: an impossible date keeps its usable parts.
    sources = [salvage_birth_dates(s)[0] for s in sources]
    return [e for e, _, _ in encode_sources(sources, secret, "k", schema=V2)]


def _found(encoded) -> set[tuple[int, int, int, int]]:
    sa, ia, sb, ib = candidate_pairs(encoded)
    return set(zip(sa.tolist(), ia.tolist(), sb.tolist(), ib.tolist()))


def test_typo_d_birth_dates_still_meet_their_record():
    # The child in the register (row 0) among 40 others of its birth year; in the other department its
    # date is wrong in the day, in month and day, in the year, transposed (an impossible month: the year is
    # kept), wrong in every part, or missing.
    register = [_child("R1"), *_others(40)]
    typos = ["2016-03-15", "2016-08-21", "2015-03-14", "2016-14-03", "2017-09-30", ""]
    for typo in typos:
        encoded = _encode([register, [_child("S1", birth_date=typo), *_others(10, seed=1)]])
        assert (0, 0, 1, 0) in _found(encoded), typo
    # A kana-only record with the year and month only (an NPO's) meets its child by the nearest pass.
    npo = _child("N1", family_name="", given_name="", birth_date="2016-03", postal_code="", address="", sex="")
    passes = []
    sa, ia, sb, ib = candidate_pairs(_encode([register, [npo]]), passes=passes)
    assert (0, 0, 1, 0) in set(zip(sa.tolist(), ia.tolist(), sb.tolist(), ib.tolist()))
    assert [p.name for p in passes] == ["nearest in birth-year blocks", "view LSH"]
    # ... and does not become every register record's nearest NPO record: a pair needs each end among
    # the other's three nearest (``mutual``).
    assert passes[0].candidates <= 3


def test_a_year_typo_is_found_by_the_view_lsh_alone():
    encoded = _encode([[_child("R1"), *_others(20)], [_child("S1", birth_date="2019-03-14")]])
    stats = diffused_candidates([e.blocks for e in encoded], [e.bits for e in encoded], V2)
    assert 0 * SPAN + 21 in stats[1].keys.tolist()  # register row 0 with the other source's row 0 (global 21)
    assert 0 * SPAN + 21 not in stats[0].keys.tolist()  # different birth-year blocks: the nearest pass cannot


def test_blocking_is_deterministic_and_independent_of_record_order():
    register, school = [_child("R1"), *_others(60)], [_child("S1", birth_date="2016-03-15"), *_others(25, seed=2)]
    first = _found(_encode([register, school]))
    assert first == _found(_encode([register, school]))
    # Reversed input order: the same pairs of records.
    rev = _found(_encode([register[::-1], school[::-1]]))
    n, m = len(register), len(school)
    assert {(s, n - 1 - i, t, m - 1 - j) for s, i, t, j in rev} == first


def test_band_keys_and_sketches_depend_on_the_linkage_secret():
    records = [_child("R1"), *_others(30)]
    a, b = _encode([records])[0], _encode([records], OTHER)[0]
    config = ViewBlockingConfig()
    view = V2.view("reading").byte_slice
    positions = np.arange(view.start * 8, view.start * 8 + 16)[None, :]
    # The same record under another key: other band keys and sketches (the views are keyed).
    assert (band_keys(a.bits, positions) != band_keys(b.bits, positions)).mean() > 0.9
    sa, sb = view_sketches(a.bits, [view], config), view_sketches(b.bits, [view], config)
    assert 0.4 < np.bitwise_count(sa ^ sb).sum() / (sa.size * 64) < 0.6
    # Records encoded under different keys do not meet (no more than chance: nothing).
    stats = diffused_candidates([a.blocks, b.blocks], [a.bits, b.bits], V2)
    assert sum(s.candidates for s in stats) == 0
    # The keyed birth-year token is keyed too.
    assert a.blocks[0, 0] != b.blocks[0, 0] and a.blocks[0, 0] == _encode([records])[0].blocks[0, 0]


def _nearest_reference(blocks, views, m, mutual, m_undated, max_distance):
    """The nearest pass the plain way: every pair of a block, distances per view, sorted lists."""
    def dist(x, y):
        return min(bin(int.from_bytes(bytes(p ^ q for p, q in zip(x[v], y[v])), "big")).count("1") / (len(x[v]) * 8)
                   for v in range(len(x)))

    def among(d: dict, k: int) -> set:
        kth = sorted(d.values())[min(k, len(d)) - 1]
        return {j for j, x in d.items() if x <= kth}

    offsets = np.cumsum([0] + [len(b) for b in blocks])
    rows = [[[views[s][i][v].tobytes() for v in range(views[s].shape[1])] for i in range(len(blocks[s]))]
            for s in range(len(blocks))]
    found = set()
    for s, t in itertools.permutations(range(len(blocks)), 2):
        # A record without a year: its own m_undated nearest of the whole other source.
        for i in range(len(blocks[s])):
            if not int(blocks[s][i, 0]):
                d = {j: dist(rows[s][i], rows[t][j]) for j in range(len(blocks[t]))}
                found |= {(s, i, t, j) for j in among(d, m_undated) if d[j] <= max_distance}
        if s > t:
            continue
        # Inside a year block: one's nearest and among the other's ``mutual`` nearest.
        for year in {int(y) for y in blocks[s][:, 0]} - {0}:
            a = [i for i in range(len(blocks[s])) if int(blocks[s][i, 0]) == year]
            b = [j for j in range(len(blocks[t])) if int(blocks[t][j, 0]) == year]
            if not a or not b:
                continue
            d = {(i, j): dist(rows[s][i], rows[t][j]) for i in a for j in b}
            row = {i: {j: d[i, j] for j in b} for i in a}
            col = {j: {i: d[i, j] for i in a} for j in b}
            for i, j in d:
                near = (j in among(row[i], m) and i in among(col[j], mutual)) or \
                       (i in among(col[j], m) and j in among(row[i], mutual))
                if near and d[i, j] <= max_distance:
                    found.add((s, i, t, j))
    out = set()
    for s, i, t, j in found:
        a, b = offsets[s] + i, offsets[t] + j
        out.add((min(a, b), max(a, b)))
    return out


def test_nearest_pass_equals_the_plain_python_twin():
    rng = np.random.default_rng(3)
    sizes = [40, 25, 12]
    # Three views of 128 bits; records of one "person" are noisy copies, years from three classes, some missing.
    base = rng.integers(0, 256, (30, 48), dtype=np.uint8)
    bits, blocks = [], []
    for s, n in enumerate(sizes):
        who = rng.integers(0, 30, n)
        noise = (rng.random((n, 48 * 8)) < 0.05 * (s + 1)).astype(np.uint8)
        bits.append(base[who] ^ np.packbits(noise, axis=1))
        year = rng.integers(1, 4, n).astype(np.uint64) * np.uint64(1000003)
        year[rng.random(n) < 0.1] = 0
        blocks.append(year[:, None])
    slices = [slice(0, 16), slice(16, 32), slice(32, 48)]
    # The sketch is the whole view here (16 bytes), so the shortlist cannot lose a neighbour; no distance
    # cut to speak of (0.6), so the mutual condition is what keeps strangers out.
    config = ViewBlockingConfig(sketch_bytes=16, neighbours=1, mutual=2, undated_neighbours=2, max_distance=0.6)
    views = [view_words(b, slices) for b in bits]
    sketches = [view_sketches(b, slices, config) for b in bits]
    keys, compared = nearest_pairs(blocks, sketches, views, config)
    got = {(int(k // SPAN), int(k % SPAN)) for k in keys}
    expected = _nearest_reference(blocks, views, 1, 2, 2, 0.6)
    assert got == expected
    assert len(expected) > 20 and compared > len(expected)
    assert _nearest_reference(blocks, views, 1, 100, 2, 0.6) > expected  # the case exercises ``mutual``


def test_view_lsh_pairs_share_a_band_key():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (30, 16), dtype=np.uint8)
    b = a.copy()
    b[:10, 0] ^= 1  # the first ten differ in one bit of the first byte
    b[20:] = rng.integers(0, 256, (10, 16), dtype=np.uint8)  # the last ten are strangers
    config = ViewBlockingConfig(lsh_bands=6, lsh_bits=24)
    keys, compared = view_lsh_pairs([a, b], [slice(0, 16)], config)
    pairs = {(int(k // SPAN), int(k % SPAN) - 30) for k in keys}
    assert {(i, i) for i in range(10, 20)} <= pairs  # identical views meet in every band
    assert {(i, i) for i in range(10)} <= pairs  # one differing bit of 128: some band misses it
    assert not any(i >= 20 or j >= 20 for i, j in pairs)  # strangers: 6 bands of 24 bits, no chance collision
    assert compared >= len(keys)
