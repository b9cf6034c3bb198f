"""Matching: hard cases one by one, then a whole synthetic town against its truth."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from linkage.encode import encode_sources
from linkage.evaluate import pairwise_quality
from linkage.compare import COMPARISONS, PairSimilarities, compare_pairs
from linkage.match import (
    FORBIDDEN,
    FORCED_LINK,
    Constraints,
    ScoredPairs,
    cluster_pairs,
    components,
    link,
    lone_pairs,
    take_pairs,
    twin_suspects,
)
from linkage.score import guard_releasable
from linkage.record import CanonicalRecord
from synthetic import generate_town

SECRET = b"test secret for matching, 32 byt"


def _rec(rid: str, **fields: str) -> CanonicalRecord:
    return CanonicalRecord(record_id=rid, **fields)


def _link(*sources: list[CanonicalRecord], background: int = 400):
    """Link small hand-made sources, padded with a synthetic town so the u-probabilities are realistic."""
    town = generate_town(n_children=background, seed=11)
    pads = [[CanonicalRecord.from_mapping(r) for r in town.sources[name]] for name in ("residents", "school", "maternal", "npo")]
    padded = [list(src) + pads[i % len(pads)] for i, src in enumerate(sources)]
    encoded = encode_sources(padded, SECRET, "k")
    result = link([e for e, _, _ in encoded])
    cluster = {}
    for c, members in enumerate(result.clusters):
        for s, r in members:
            cluster[(s, padded[s][encoded[s][1][r]].record_id)] = c
    return cluster


def _together(cluster, a, b) -> bool:
    return cluster[a] == cluster[b]


RESIDENT = dict(
    family_name="髙橋", given_name="陽翔", family_name_kana="タカハシ", given_name_kana="ハルト",
    birth_date="2015-04-01", sex="1", postal_code="300-1201", address="茨城県つなぐ市本町3丁目5番2号",
)


def test_itaiji_kana_and_wareki_variants_link():
    school = dict(full_name="高橋　陽翔", full_name_kana="たかはし　はると", birth_date="H27.4.1", sex="男", address="本町3-5-2")
    c = _link([_rec("R1", **RESIDENT)], [_rec("S1", **school)])
    assert _together(c, (0, "R1"), (1, "S1"))


def test_constraints_bind_the_solver_and_its_result():
    # A pair that links on its own is kept apart by a cannot-link decision; a pair that shares
    # nothing (no candidate) is joined by a must-link decision; the rest of the run is unchanged.
    other = dict(family_name="佐々木", given_name="美咲", family_name_kana="ササキ", given_name_kana="ミサキ",
                 birth_date="2012-09-30", sex="2", address="茨城県つなぐ市緑町1丁目2番3号")
    stranger = dict(full_name="山本　大和", full_name_kana="やまもと　やまと", birth_date="H20.1.9", sex="男", address="北町9-9")
    school = dict(full_name="高橋　陽翔", full_name_kana="たかはし　はると", birth_date="H27.4.1", sex="男", address="本町3-5-2")
    encoded = encode_sources([[_rec("R1", **RESIDENT), _rec("R2", **other)], [_rec("S1", **school), _rec("S2", **stranger)]],
                             SECRET, "k")
    encodings = [e for e, _, _ in encoded]
    free = link(encodings)
    assert [(0, 0), (1, 0)] in free.clusters and [(0, 1)] in free.clusters and [(1, 1)] in free.clusters
    bound = link(encodings, constraints=Constraints(must_link=[((0, 1), (1, 1))], cannot_link=[((0, 0), (1, 0))]))
    assert sorted(bound.clusters) == [[(0, 0)], [(0, 1), (1, 1)], [(1, 0)]]
    # The decided candidate pair carries the forbidden weight (it never returns to the review queue).
    decided = (bound.pairs.source_a == 0) & (bound.pairs.index_a == 0) & (bound.pairs.index_b == 0)
    assert bound.pairs.weight[decided].tolist() == [FORBIDDEN]
    assert FORCED_LINK > free.match_threshold


def test_twins_are_never_merged():
    twin_a = dict(RESIDENT)
    twin_b = dict(RESIDENT, given_name="陽菜", given_name_kana="ヒナ", sex="2")
    twin_c = dict(RESIDENT, given_name="悠翔", given_name_kana="ユウト")
    school_a = dict(full_name="高橋　陽翔", full_name_kana="たかはし　はると", birth_date="H27.4.1", sex="男", address="本町3-5-2")
    school_b = dict(full_name="高橋　陽菜", full_name_kana="たかはし　ひな", birth_date="H27.4.1", sex="女", address="本町3-5-2")
    school_c = dict(full_name="高橋　悠翔", full_name_kana="たかはし　ゆうと", birth_date="H27.4.1", sex="男", address="本町3-5-2")
    c = _link(
        [_rec("RA", **twin_a), _rec("RB", **twin_b), _rec("RC", **twin_c)],
        [_rec("SA", **school_a), _rec("SB", **school_b), _rec("SC", **school_c)],
    )
    assert _together(c, (0, "RA"), (1, "SA"))
    assert _together(c, (0, "RB"), (1, "SB"))
    assert _together(c, (0, "RC"), (1, "SC"))
    assert len({c[(0, "RA")], c[(0, "RB")], c[(0, "RC")]}) == 3


# Kanji only, as a register without readings holds a child (FEBRL's kind of record).
WRITTEN_ONLY = dict(family_name="髙橋", given_name="陽翔", birth_date="2015-04-01", sex="1", postal_code="300-1201",
                    address="茨城県つなぐ市本町3丁目5番2号")


def test_a_replaced_given_name_links_when_family_date_and_address_agree():
    # One given-name form only, and it was replaced: everything else says it is the same child.
    school = dict(WRITTEN_ONLY, given_name="大輔")
    c = _link([_rec("R1", **WRITTEN_ONLY)], [_rec("S1", **school)])
    assert _together(c, (0, "R1"), (1, "S1"))


def test_a_family_name_moved_to_the_given_field_is_compared_crossed():
    # The family name sits in the given-name field and the family field holds something else:
    # the part that agrees is counted as the family name, the other as a given name that differs.
    moved = dict(WRITTEN_ONLY, family_name="大輔", given_name="髙橋")
    encoded = encode_sources([[_rec("R1", **WRITTEN_ONLY)], [_rec("S1", **moved)]], SECRET, "k")
    (a, _, _), (b, _, _) = encoded
    sims = compare_pairs(a, np.array([0]), b, np.array([0]))
    family, given = sims.values[0, COMPARISONS.index("name_family")], sims.values[0, COMPARISONS.index("name_given")]
    assert family > 0.95 and given < 0.45
    # Twins keep their own fields: nothing crosses.
    twin = dict(WRITTEN_ONLY, given_name="大輔")
    (t, _, _), = encode_sources([[_rec("T1", **twin)]], SECRET, "k")
    sims = compare_pairs(a, np.array([0]), t, np.array([0]))
    assert sims.values[0, COMPARISONS.index("name_family")] > 0.95


def test_twins_known_by_one_given_name_form_are_never_merged():
    # Same-sex twins without readings: the register holds both, each other list one of them.
    twin_b = dict(WRITTEN_ONLY, given_name="大輔")
    c = _link([_rec("RA", **WRITTEN_ONLY), _rec("RB", **twin_b)], [_rec("SB", **twin_b)], [_rec("MA", **WRITTEN_ONLY)])
    assert _together(c, (0, "RB"), (1, "SB"))
    assert _together(c, (0, "RA"), (2, "MA"))
    assert not _together(c, (0, "RA"), (0, "RB"))
    assert not _together(c, (1, "SB"), (2, "MA"))


def test_a_released_pair_beside_a_twin_pattern_is_dropped():
    # School record 0 against register records 0 (given name replaced, all else agrees: released,
    # 17 bits) and 1 (the right child, but its register record carries errors: 13 bits, live).
    nan = np.nan
    sims = PairSimilarities(np.array([[1.0, 0.2, nan, nan, 1.0, 1.0], [1.0, 1.0, nan, nan, 0.7, 0.5]]),
                            np.array([2, 2], dtype=np.int8))
    pairs = ScoredPairs(np.array([0, 0]), np.array([0, 1]), np.array([1, 1]), np.array([0, 0]), sims, np.array([17.0, 13.0]))
    assert guard_releasable(sims).tolist() == [True, False]
    assert twin_suspects(pairs, 12.0).tolist() == [True, False]
    assert cluster_pairs(pairs, 12.0) == [[(0, 1), (1, 0)]]


def test_a_lone_pair_links_below_the_threshold_only_without_rivals():
    # Register records 0..3 against school records 0..3, all below the match threshold (12):
    # 0-0: names and address agree, the date was replaced (7.7 bits), no other pair: lone, linked.
    # 1-1 (7.7) has a rival 1-2 (5.5) into the same source within 3 bits: a guess, not linked.
    # 2-3: the same evidence, but the school record has a better pair (3-3, 9.0): not its best.
    # 3-3 is the best of both its records but agrees on names only: a name alone never links.
    nan = np.nan
    agree = [1.0, 1.0, nan, nan, 0.3, 0.8]
    names = [1.0, 1.0, nan, nan, 0.3, 0.1]
    sims = PairSimilarities(np.array([agree, agree, agree, agree, names]), np.zeros(5, dtype=np.int8))
    pairs = ScoredPairs(np.zeros(5, dtype=np.int64), np.array([0, 1, 1, 2, 3]), np.ones(5, dtype=np.int64),
                        np.array([0, 1, 2, 3, 3]), sims, np.array([7.7, 7.7, 5.5, 7.0, 9.0]))
    assert lone_pairs(pairs, 12.0).tolist() == [True, False, False, False, False]
    assert cluster_pairs(pairs, 12.0) == [[(0, 0), (1, 0)]]
    # Solved one component at a time with the run's mask, the same clusters come out.
    lone = lone_pairs(pairs, 12.0)
    parts = components(pairs, [4, 4], 12.0)
    assert [c for part in parts for c in cluster_pairs(take_pairs(pairs, part), 12.0, lone[part])] == [[(0, 0), (1, 0)]]


def test_a_namesake_born_years_apart_in_the_same_district_is_another_child():
    # Same written name and reading, next door; born seven years earlier with only the month in common.
    # It is the only candidate of both records, yet it does not link (a lone pair must not be capped).
    school = dict(full_name="高橋　陽翔", full_name_kana="たかはし　はると", birth_date="2008-04-19", sex="男",
                  address="本町3-5-9")
    c = _link([_rec("R1", **RESIDENT)], [_rec("S1", **school)])
    assert not _together(c, (0, "R1"), (1, "S1"))
    # Transposed day and month is one wrong part, not a contradiction.
    transposed = dict(school, birth_date="2015-01-04", address="本町3-5-2")
    c = _link([_rec("R1", **RESIDENT)], [_rec("S1", **transposed)])
    assert _together(c, (0, "R1"), (1, "S1"))


def test_missing_kana_and_partial_birth_date_are_not_disagreement():
    maternal = dict(family_name="髙橋", given_name="陽翔", birth_date="20150401", sex="M", address="つなぐ市本町3丁目5番2号")
    npo = dict(full_name_kana="タカハシ ハルト", birth_date="2015年4月", postal_code="3001201")
    c = _link([_rec("R1", **RESIDENT)], [_rec("M1", **maternal)], [_rec("N1", **npo)])
    assert _together(c, (0, "R1"), (1, "M1"))
    assert _together(c, (0, "R1"), (2, "N1"))


def test_wrong_split_and_swapped_order_survive():
    resident = dict(RESIDENT, family_name="佐々木", given_name="健太", family_name_kana="ササキ", given_name_kana="ケンタ")
    unsplit = dict(full_name="佐々木健太", full_name_kana="ささきけんた", birth_date="H27.4.1", sex="男")
    swapped = dict(family_name="健太", given_name="佐々木", family_name_kana="ケンタ", given_name_kana="ササキ", birth_date="20150401", sex="M")
    c = _link([_rec("R1", **resident)], [_rec("S1", **unsplit)], [_rec("M1", **swapped)])
    assert _together(c, (0, "R1"), (1, "S1"))
    assert _together(c, (0, "R1"), (2, "M1"))


def test_alphabet_name_links_to_kanji_tsusho_through_the_reading():
    resident = dict(
        family_name="WANG", given_name="XIAOMING", family_name_kana="ワン", given_name_kana="シャオミン",
        birth_date="2014-07-07", sex="1", postal_code="300-1220", address="茨城県つなぐ市旭町2丁目1番3号",
    )
    school = dict(full_name="王　小明", full_name_kana="わん　しゃおみん", birth_date="平成26年7月7日", sex="男", address="旭町2-1-3")
    latin_swapped = dict(full_name="Xiaoming Wang", full_name_kana="シャオミン ワン", birth_date="2014/7/7", sex="M")
    c = _link([_rec("R1", **resident)], [_rec("S1", **school)], [_rec("M1", **latin_swapped)])
    assert _together(c, (0, "R1"), (1, "S1"))
    assert _together(c, (0, "R1"), (2, "M1"))


def test_two_namesakes_without_birth_date_are_not_guessed():
    a = dict(RESIDENT)
    b = dict(RESIDENT, birth_date="2012-09-30", postal_code="300-1230", address="茨城県つなぐ市桜台4丁目1番1号")
    npo = dict(full_name_kana="タカハシ ハルト", sex="男")
    c = _link([_rec("RA", **a), _rec("RB", **b)], [_rec("N1", **npo)])
    assert not _together(c, (0, "RA"), (1, "N1"))
    assert not _together(c, (0, "RB"), (1, "N1"))


@pytest.fixture(scope="module")
def town_result():
    town = generate_town(n_children=6000, seed=5)
    names = list(town.sources)
    sources = [[CanonicalRecord.from_mapping(r) for r in town.sources[n]] for n in names]
    encoded = encode_sources(sources, SECRET, "k")
    result = link([e for e, _, _ in encoded])
    predicted = {}
    for c, members in enumerate(result.clusters):
        for s, r in members:
            predicted[(names[s], sources[s][encoded[s][1][r]].record_id)] = c
    truth = {(s, r): p for s, r, p in town.truth}
    return town, names, sources, encoded, result, predicted, truth


def test_every_record_in_exactly_one_cluster_with_one_record_per_source(town_result):
    town, names, sources, encoded, result, predicted, truth = town_result
    members = [m for c in result.clusters for m in c]
    assert len(members) == len(set(members)) == sum(len(e) for e, _, _ in encoded)
    assert sum(len(e) for e, _, _ in encoded) + sum(len(err) for _, _, err in encoded) == sum(len(s) for s in sources)
    for c in result.clusters:
        srcs = [s for s, _ in c]
        assert len(srcs) == len(set(srcs))


def test_town_quality_floor_and_no_twins_merged(town_result):
    town, names, sources, encoded, result, predicted, truth = town_result
    overall, _ = pairwise_quality(predicted, {k: truth[k] for k in predicted})
    assert overall.precision >= 0.995, overall
    assert overall.f1 >= 0.97, overall
    # Twins: residents records sharing family name, birth date and address but different persons.
    groups = defaultdict(list)
    for row in town.sources["residents"]:
        groups[(row["family_name"], row["birth_date"], row["address"])].append(row["record_id"])
    twin_sets = [ids for ids in groups.values() if len(ids) > 1]
    assert twin_sets, "the synthetic town should contain twins"
    for ids in twin_sets:
        assert len({predicted[("residents", rid)] for rid in ids}) == len(ids)


def test_review_queue_lies_between_thresholds_or_is_ambiguous(town_result):
    *_, result, _predicted, _truth = town_result
    queue = result.review_queue()
    w = result.pairs.weight[queue]
    assert len(queue) > 0
    assert np.all(w >= result.review_threshold)


def test_a_name_alone_never_links_but_goes_to_review():
    npo = dict(full_name_kana="タカハシ ハルト")
    encoded = encode_sources([[_rec("R1", **RESIDENT)], [_rec("N1", **npo)]], SECRET, "k")
    c = _link([_rec("R1", **RESIDENT)], [_rec("N1", **npo)])
    assert not _together(c, (0, "R1"), (1, "N1"))
    result = link([e for e, _, _ in encoded])
    assert len(result.review_queue()) == 1
