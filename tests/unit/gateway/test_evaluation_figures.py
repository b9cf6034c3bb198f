"""Every evaluation figure on small hand-made cases whose answer is worked out by hand in the comments."""

from __future__ import annotations

import pytest

from gateway.evaluation import figures as F
from gateway.evaluation import pooled, risk
from gateway.evaluation.data import Dataset, period_of
from gateway.evaluation.report import in_group
from policy.screening import Condition
from policy.support import note_problem


def _flags() -> list[F.Flag]:
    # list 1 (capacity 3): A(r1: abs), B(r2: abs, chk), C(r3: chk), D(rank 4: beyond the capacity)
    return [F.Flag(1, "p1", "A", 1, 3, ("abs",)), F.Flag(1, "p1", "B", 2, 3, ("abs", "chk")), F.Flag(1, "p1", "C", 3, 1, ("chk",)),
            F.Flag(1, "p1", "D", 4, 1, ("chk",), in_list=False),
            # list 2: A again (rank 1) and E
            F.Flag(2, "p2", "A", 1, 3, ("abs",)), F.Flag(2, "p2", "E", 2, 1, ("chk",))]


def _cases() -> list[F.Case]:
    return [F.Case(1, "A", 1, "p1", "needs_support", ("school_refusal",), ("counselling",), features={"school.absence_days": "40"}),
            F.Case(2, "B", 1, "p1", "not_needed", (), (), "no_concern", features={"school.absence_days": "35", "maternal.checkup_missed": "1"}),
            F.Case(3, "C", 1, "p1", "pending"),  # not yet checked
            F.Case(4, "A", 2, "p2", "needs_support", ("school_refusal",), (), features={"school.absence_days": "0"}),
            F.Case(5, "E", 2, "p2", "watch", ("poverty",), features={"maternal.checkup_missed": "1"}),
            F.Case(6, "Z", None, "p2", "needs_support", ("abuse",), ("referral",))]  # found by another route


def test_funnel_per_period_rule_and_total() -> None:
    flags, cases = _flags(), _cases()
    p1, p2 = F.funnel_by_period(flags, cases)
    # p1: flagged A,B,C (D beyond the capacity); checked A,B; needing A; supported A; not needed B
    assert (p1.key, p1.flagged, p1.checked, p1.needs_support, p1.supported, p1.not_needed) == ("p1", 3, 2, 1, 1, 1)
    assert p1.precision == 0.5
    # p2: flagged A,E; checked both; needing A; none supported
    assert (p2.flagged, p2.checked, p2.needs_support, p2.supported, p2.precision) == (2, 2, 1, 0, 0.5)
    abs_, chk = F.funnel_by_rule(flags, cases, ["abs", "chk"])
    # abs: A(l1), B(l1), A(l2) → checked 3, needing 2 → 2/3
    assert (abs_.flagged, abs_.checked, abs_.needs_support, abs_.precision) == (3, 3, 2, pytest.approx(2 / 3))
    # chk: B, C (D is beyond the capacity), E → checked B, E; needing none
    assert (chk.flagged, chk.checked, chk.needs_support, chk.precision) == (3, 2, 0, 0.0)
    total = F.funnel_total(flags, cases)
    assert (total.flagged, total.checked, total.needs_support, total.supported) == (5, 4, 2, 1)
    assert F.FunnelRow("x", 1, 0, 0, 0, 0).precision is None


def test_reach_counts_children_found_by_other_routes() -> None:
    reach = F.reach(_flags(), _cases())
    # supported: A (counselling) and Z (referral); Z was never on a list
    assert (reach.supported, reach.supported_flagged, reach.supported_other_route, reach.recall_proxy) == (2, 1, 1, 0.5)
    assert (reach.needing, reach.needing_flagged) == (2, 1)  # A and Z


def test_capacity_curve_by_rank_and_by_another_order() -> None:
    flags = _flags()
    # list 1 in rank order A, B, C, D; positives A and D
    assert F.capacity_curve(flags, {"A", "D"}, 1) == [(1, 1), (2, 1), (3, 1), (4, 2)]
    # ordered by an index that puts D first
    assert F.capacity_curve(flags, {"A", "D"}, 1, {"D": 0.9, "A": 0.5}) == [(1, 1), (2, 2), (3, 2), (4, 2)]


def test_items_against_difficulty_types() -> None:
    cases = _cases()
    assert F.item_present("0") is False and F.item_present("") is False and F.item_present("3") and F.item_present("あり")
    assert F.item_present("未受診") and not F.item_present("受診") and not F.item_present("なし")
    presence = F.item_presence(cases)
    # checked cases: 1, 2, 4, 5, 6 (3 is pending); absence present in 1, 2 (case 4 has 0); checkup in 2, 5
    assert presence == {"maternal.checkup_missed": (2, 5), "school.absence_days": (2, 5)}
    assoc = {(a.item, a.difficulty): a for a in F.items_by_difficulty(cases, ["school_refusal", "poverty"])}
    a = assoc[("school.absence_days", "school_refusal")]
    # school_refusal: cases 1 and 4; absence present among them: 1 → 1/2; among the other three (2, 5, 6): 1/3
    assert (a.n, a.with_item, a.with_type, a.both) == (5, 2, 2, 1)
    assert a.share_with_type == 0.5 and a.share_without_type == pytest.approx(1 / 3)
    # phi = (1·2 − 1·1) / sqrt(2·3·2·3) = 1/6
    assert a.phi == pytest.approx(1 / 6)
    p = assoc[("maternal.checkup_missed", "poverty")]
    # poverty: case 5 only, which has checkup; phi = (1·3 − 1·0)/sqrt(2·3·1·4) = 3/sqrt(24)
    assert p.phi == pytest.approx(3 / 24 ** 0.5)


def test_what_the_human_check_changed() -> None:
    h = F.human_check(_flags(), _cases())
    # flagged and checked: A(l1), B, A(l2), E → not needed B (no_concern, rules abs+chk), watch E, needing A twice
    assert (h.checked, h.not_needed, h.watch, h.needs_support) == (4, 1, 1, 2)
    assert h.reasons == {"no_concern": 1} and h.by_rule == {"abs": 1, "chk": 1}


def _judged(period: str, n: int, offset: int = 0) -> list[F.Case]:
    # item x present → needs support (mostly); item y present → not; group g members never have x recorded (blank)
    out = []
    for i in range(n):
        x = i % 2 == 0
        g = i % 5 == 0
        features = {"s.y": "1" if not x else "0"}
        if not g:
            features["s.x"] = "1" if x else "0"
        out.append(F.Case(offset + i, f"P{offset + i}", 1, period, "needs_support" if (x or g) else "not_needed", features=features))
    return out


def test_risk_index_is_fitted_on_earlier_and_evaluated_on_a_later_period_and_checks_groups() -> None:
    cases = _judged("p1", 40) + _judged("p2", 40, offset=100)
    index = risk.fit(cases, ["p1"])
    weights = dict(zip(index.items, index.weights))
    assert weights["s.x"] > 0 > weights["s.y"]
    child = {"s.x": "1", "s.y": "0"}
    assert index.contributions(child) == [("s.x", weights["s.x"])]
    assert index.index(child) == pytest.approx(100 / (1 + 2.718281828 ** -(index.intercept + weights["s.x"])), rel=1e-6)
    with pytest.raises(risk.RiskIndexError):
        risk.evaluate(index, cases, "p1", {})
    ev = risk.evaluate(index, cases, "p2", {c.case_id: 0.0 for c in cases})
    assert ev.cases == 40 and ev.positives == 24 and ev.auc is not None and ev.auc > 0.8
    assert ev.k == 20 and ev.precision_index >= ev.precision_rules
    test = [c for c in cases if c.period == "p2"]
    group = risk.group_check(index, cases, "p2", "g", "空欄の多い子ども", [(c.case_id - 100) % 5 == 0 for c in test])
    # group members needing support have x blank, so the index ranks them lower than the others needing support
    assert group.positives == 8 and group.gap is not None and group.gap > risk.FAIRNESS_GAP_POINTS
    assert group.verdict.startswith("注意")
    with pytest.raises(risk.RiskIndexError):
        risk.fit(_judged("p1", 4), ["p1"])


def test_percentiles_share_ties() -> None:
    assert risk.percentiles([1, 2, 2, 3]) == [0.0, 50.0, 50.0, 100.0]


def test_periods_and_groups() -> None:
    import datetime as dt

    # 2026-03-31 23:30 UTC is 2026-04-01 in Japan: the new fiscal year's first quarter
    moment = dt.datetime(2026, 3, 31, 23, 30)
    assert period_of(moment, "month") == "2026-04" and period_of(moment, "quarter") == "2026Q1"
    assert period_of(moment, "fiscal_year") == "2026年度" and period_of(dt.date(2026, 3, 1), "fiscal_year") == "2025年度"
    assert period_of(moment, "snapshot", 7) == "一覧0007"
    moved = (Condition(source="residents", attribute="moved_in_from", op="present"),
             Condition(source="school", attribute="absence_days", op="missing"))
    assert in_group(moved, {"residents.moved_in_from": "131016"})
    assert not in_group(moved, {"residents.moved_in_from": "131016", "school.absence_days": "3"})


def test_pooled_counts_suppress_small_numbers_and_sum() -> None:
    assert [pooled.suppress(n) for n in (0, 1, 4, 5, 12)] == [0, None, None, 5, 12]
    data = Dataset(_flags(), _cases(), {"abs": "欠席", "chk": "健診"}, {1: 3, 2: 2}, ["p1", "p2"], "snapshot")
    counts = pooled.counts(data, ["school_refusal"], minimum=3)
    assert counts["rules"]["abs"] == {"flagged": 3, "checked": 3, "needs_support": None, "supported": None, "not_needed": None}
    assert counts["total"]["flagged"] == 5
    assert "A" not in repr(counts) and "40" not in repr(counts)  # no person id, no value


def test_notes_that_look_like_identities_are_refused() -> None:
    for note in ("田中さん宅", "連絡先 03-1234-5678", "〒123-4567", "本町3丁目", "佐藤の家", "Maria Santos"):
        assert note_problem(note) is not None, note
    for note in ("面談で懸念なしを確認", "学校と連携して見守る", "家庭訪問を予定"):
        assert note_problem(note) is None, note
    assert note_problem("あ" * 101) is not None
