"""Blocking passes: the Hamming-LSH pass against a plain-Python twin, and records whose dates are wrong still meet."""

from __future__ import annotations

import itertools

import numpy as np

from linkage.blocking import (
    LshConfig,
    band_keys,
    band_keys_reference,
    informative_columns,
    lsh_pairs,
    pair_key,
    sample_positions,
    split_keys,
    offsets_of,
    unique_sorted,
)
from linkage.encode import encode_sources
from linkage.match import candidate_pairs
from linkage.record import CanonicalRecord
from linkage.salvage import salvage_birth_dates, usable_parts

SECRET = b"test secret for blocking, 32 byt"


def _lsh_pairs_reference(sources: list[list[bytes]], positions: np.ndarray, config: LshConfig) -> set[tuple[int, int]]:
    """Every cross-source pair sharing a band key, the plain way: dictionaries of lists."""
    offsets = [0]
    for src in sources:
        offsets.append(offsets[-1] + len(src))
    found = set()
    for band in range(len(positions)):
        blocks: dict[int, list[tuple[int, int]]] = {}
        for s, src in enumerate(sources):
            for i, key in enumerate(band_keys_reference(src, positions[band : band + 1])):
                if bin(key[0]).count("1") >= config.min_ones:
                    blocks.setdefault(key[0], []).append((s, offsets[s] + i))
        for members in blocks.values():
            if len(members) > config.max_block:
                continue
            for (s, a), (t, b) in itertools.combinations(members, 2):
                if s != t:
                    found.add((min(a, b), max(a, b)))
    return found


def test_band_keys_equal_the_plain_python_twin():
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 256, size=(50, 16), dtype=np.uint8)
    positions = rng.choice(128, size=(7, 12), replace=True)
    assert band_keys(bits, positions).tolist() == band_keys_reference([r.tobytes() for r in bits], positions)


def test_lsh_pairs_equal_the_plain_python_twin():
    rng = np.random.default_rng(7)
    # Three sources of noisy copies of 40 prototypes: plenty of collisions, some blocks too big.
    protos = rng.random((40, 256)) < 0.3
    sources = []
    for n in (60, 45, 30):
        rows = protos[rng.integers(0, 40, n)] ^ (rng.random((n, 256)) < 0.03)
        sources.append(np.packbits(rows, axis=1))
    config = LshConfig(bands=9, bits_per_band=6, max_block=8, min_ones=2)
    keys, compared, positions = lsh_pairs(sources, config)
    expected = _lsh_pairs_reference([[r.tobytes() for r in s] for s in sources], positions, config)
    got = {(int(k // (1 << 31)), int(k % (1 << 31))) for k in keys}
    assert got == expected
    assert len(expected) > 50  # the case is not trivial
    assert compared >= len(keys)


def test_informative_columns_leave_out_empty_segments():
    bits = np.zeros((100, 4), dtype=np.uint8)
    bits[:, 0] = np.random.default_rng(1).integers(0, 256, 100)  # first byte varies, the rest is a missing field
    cols = informative_columns([bits], 0.02, 0.98)
    assert len(cols) > 0 and cols.max() < 8
    assert len(sample_positions(cols, LshConfig(bands=3, bits_per_band=4))) == 3


def test_pair_keys_round_trip_and_unique_sorted():
    offsets = offsets_of([5, 7, 3])
    ga = np.array([0, 4, 6, 13])
    gb = np.array([5, 12, 14, 2])
    sa, ia, sb, ib = split_keys(pair_key(ga, gb), offsets)
    assert list(zip(sa.tolist(), ia.tolist(), sb.tolist(), ib.tolist())) == [(0, 0, 1, 0), (0, 4, 2, 0), (1, 1, 2, 2), (0, 2, 2, 1)]
    assert unique_sorted(np.array([5, 3, 5, 1, 3])).tolist() == [1, 3, 5]


def _rec(rid: str, **fields: str) -> CanonicalRecord:
    return CanonicalRecord(record_id=rid, **fields)


def test_a_record_whose_date_is_wrong_in_two_parts_is_still_a_candidate():
    # Same child, the school's birth date wrong in month and day: no birth-date block in common.
    resident = _rec("R1", family_name="渡辺", given_name="結菜", family_name_kana="ワタナベ", given_name_kana="ユイナ",
                    birth_date="2016-03-14", sex="2", postal_code="300-1201", address="茨城県つなぐ市本町3丁目5番2号")
    school = _rec("S1", family_name="渡辺", given_name="結菜", family_name_kana="ワタナベ", given_name_kana="ユイナ",
                  birth_date="2016-08-21", sex="2", postal_code="300-1201", address="茨城県つなぐ市本町3丁目5番2号")
    others = [_rec(f"X{i}", family_name="佐藤", given_name=f"太郎{i}", birth_date=f"2014-0{1 + i % 9}-1{i % 10}") for i in range(30)]
    encoded = [e for e, _, _ in encode_sources([[resident, *others], [school]], SECRET, "k", workers=1)]
    passes = []
    sa, ia, sb, ib = candidate_pairs(encoded, passes=passes, workers=1)
    found = set(zip(sa.tolist(), ia.tolist(), sb.tolist(), ib.tolist()))
    assert (0, 0, 1, 0) in found
    by_name = {p.name: p for p in passes}
    assert by_name["Hamming LSH"].candidates >= 1
    # Without the LSH pass the pair is never compared: that is what the pass is for.
    sa, ia, sb, ib = candidate_pairs(encoded, lsh=None, workers=1)
    assert (0, 0, 1, 0) not in set(zip(sa.tolist(), ia.tolist(), sb.tolist(), ib.tolist()))


def test_impossible_birth_dates_keep_their_usable_parts():
    assert usable_parts("19151131") == "1915-11"
    assert usable_parts("2015-02-30") == "2015-02"
    assert usable_parts("2015/13/01") == "2015"
    assert usable_parts("3015-01-01") == ""
    assert usable_parts("平成32年1月1日") == ""
    records = [_rec("A", birth_date="2015-04-01"), _rec("B", birth_date="19151131"), _rec("C", birth_date="abc")]
    kept, notes = salvage_birth_dates(records)
    assert [r.record_id for r in kept] == ["A", "B", "C"]
    assert [r.birth_date for r in kept] == ["2015-04-01", "1915-11", ""]
    assert [(n.index, n.field) for n in notes] == [(1, "birth_date"), (2, "birth_date")]
    assert "1915年11月" in notes[0].reason


def test_component_labels_equal_a_plain_union_find():
    from linkage.blocking import component_labels

    rng = np.random.default_rng(5)
    n = 300
    a, b = rng.integers(0, n, 220), rng.integers(0, n, 220)
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for x, y in zip(a.tolist(), b.tolist()):
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)
    expected = [find(x) for x in range(n)]
    got = component_labels(n, a, b)
    # Same partition (labels are each component's smallest member in both).
    assert got.tolist() == expected
    assert len(set(expected)) < n  # there are real components
