"""Blocking passes: the Hamming-LSH pass against a plain-Python twin, and records whose dates are wrong still meet."""

from __future__ import annotations

import itertools

import numpy as np

from linkage.blocking import (
    SPAN,
    LshConfig,
    SplitConfig,
    keyed_tasks,
    large_tokens,
    split_block_pairs,
    split_positions,
    undated_pairs,
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


def _split_reference(blocks, bits, segments, large, config, undated_only=False):
    """Pairs of the split large blocks (or of the undated records), the plain way: dictionaries of lists."""
    rows = [(s, i) for s in range(len(blocks)) for i in range(len(blocks[s]))]
    offsets = np.cumsum([0] + [len(b) for b in blocks])
    found = set()
    groups: dict[tuple, list[tuple[int, int]]] = {}
    if undated_only:
        positions = split_positions(segments, 1, config, config.undated_bits_per_band)[0]
        for s, i in rows:
            row = bits[s][i].tobytes()
            for f, seg in enumerate(segments):
                for b in range(config.bands):
                    sample = band_keys_reference([row], positions[f, b][None, :])[0][0]
                    if any(row[seg]) and sample:
                        groups.setdefault((f, b, sample), []).append((s, i))
        for members in groups.values():
            if len(members) > config.max_sub_block or not any(not blocks[s][i].any() for s, i in members):
                continue
            for (s, a), (t, b) in itertools.combinations(members, 2):
                if s != t and (not blocks[s][a].any() or not blocks[t][b].any()):
                    ga, gb = offsets[s] + a, offsets[t] + b
                    found.add((min(ga, gb), max(ga, gb)))
        return found
    positions = split_positions(segments, len(large), config)
    for s, i in rows:
        row = bits[s][i].tobytes()
        for k in range(len(large)):
            token = int(blocks[s][i, k])
            if token == 0 or token not in set(large[k].tolist()):
                continue
            for f, seg in enumerate(segments):
                for b in range(config.bands):
                    sample = band_keys_reference([row], positions[k, f, b][None, :])[0][0]
                    if any(row[seg]) and sample:
                        groups.setdefault((k, token, f, b, sample), []).append((s, i))
    for members in groups.values():
        if len(members) > config.max_sub_block:
            continue
        for (s, a), (t, b) in itertools.combinations(members, 2):
            if s != t:
                ga, gb = offsets[s] + a, offsets[t] + b
                found.add((min(ga, gb), max(ga, gb)))
    return found


def test_split_large_blocks_and_undated_pairs_equal_the_plain_python_twin():
    rng = np.random.default_rng(5)
    # Three sources: noisy copies of 30 prototype names, birth-date tokens from a few values (large
    # blocks), some records with no token at all.
    protos = rng.random((30, 64)) < 0.3
    blocks, bits = [], []
    for n in (60, 45, 30):
        pick = rng.integers(0, 30, n)
        rows = protos[pick] ^ (rng.random((n, 64)) < 0.03)
        bits.append(np.packbits(rows, axis=1))
        tok = rng.integers(1, 4, size=(n, 2)).astype(np.uint64)
        tok[rng.random(n) < 0.1] = 0
        blocks.append(tok)
    segments = [slice(0, 4), slice(4, 8)]
    config = SplitConfig(max_block=20, bands=3, bits_per_band=6, max_sub_block=25, undated_bits_per_band=9)
    large = large_tokens(blocks, config.max_block)
    assert any(len(v) for v in large)
    keys, compared = split_block_pairs(blocks, bits, segments, large, config)
    assert {(int(k // SPAN), int(k % SPAN)) for k in keys} == _split_reference(blocks, bits, segments, large, config)
    assert compared >= len(keys) > 0
    keys, _ = undated_pairs(blocks, bits, segments, config)
    assert {(int(k // SPAN), int(k % SPAN)) for k in keys} == _split_reference(blocks, bits, segments, large, config, True)
    assert len(keys) > 0
    # Large blocks are not compared whole, and undated records no longer meet everyone.
    tasks, _ = keyed_tasks(blocks, large)
    skipped = {(k, int(v)) for k, vals in enumerate(large) for v in vals.tolist()}
    for s, rows_s, t, rows_t in tasks:
        assert all(blocks[s][rows_s[0], k] == 0 or (k, int(blocks[s][rows_s[0], k])) not in skipped or
                   blocks[s][rows_s[0], k] != blocks[t][rows_t[0], k] for k in range(2))
    # With the changed mask, only pairs with a changed end: a subset of the full run's pairs.
    changed = np.zeros(135, dtype=bool)
    changed[rng.choice(135, 20, replace=False)] = True
    full, _ = split_block_pairs(blocks, bits, segments, large, config)
    part, _ = split_block_pairs(blocks, bits, segments, large, config, changed)
    expected = full[changed[full // SPAN] | changed[full % SPAN]]
    assert part.tolist() == expected.tolist()


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
    encoded = [e for e, _, _ in encode_sources([[resident, *others], [school]], SECRET, "k")]
    passes = []
    sa, ia, sb, ib = candidate_pairs(encoded, passes=passes)
    found = set(zip(sa.tolist(), ia.tolist(), sb.tolist(), ib.tolist()))
    assert (0, 0, 1, 0) in found
    by_name = {p.name: p for p in passes}
    assert by_name["Hamming LSH"].candidates >= 1
    # Without the LSH pass the pair is never compared: that is what the pass is for.
    sa, ia, sb, ib = candidate_pairs(encoded, lsh=None)
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
