"""Screening rules: which items fire, blank is not zero, sorting and the capacity."""

from __future__ import annotations

import pytest

from policy.screening import ScreeningError, default_screening, load_screening, parse_screening

RULES = {
    "version": 1,
    "capacity": 2,
    "rules": [
        {
            "id": "absence_without_aid",
            "label": "年間欠席30日以上で就学援助なし",
            "weight": 3,
            "all": [
                {"source": "school", "attribute": "absence_days", "op": ">=", "value": 30},
                {"source": "school", "attribute": "school_aid", "op": "in", "value": ["0"]},
            ],
        },
        {"id": "checkup", "label": "健診未受診", "weight": 1, "all": [{"source": "*", "attribute": "checkup_missed", "op": "==", "value": "1"}]},
    ],
}


def test_fired_rules_name_the_items_that_fired():
    s = parse_screening(RULES)
    flags = s.evaluate({"school": {"absence_days": "42", "school_aid": "0"}, "maternal": {"checkup_missed": "1"}})
    assert [f.rule_id for f in flags] == ["absence_without_aid", "checkup"]
    items = flags[0].items
    assert [(i.source, i.attribute, i.value) for i in items] == [("school", "absence_days", "42"), ("school", "school_aid", "0")]
    assert flags[1].items[0].source == "maternal"


def test_blank_is_not_zero():
    s = parse_screening(RULES)
    assert s.evaluate({"school": {"absence_days": "", "school_aid": "0"}}) == ()
    assert s.evaluate({"school": {"school_aid": "0"}}) == ()
    assert s.evaluate({"school": {"absence_days": "29", "school_aid": "0"}}) == ()


def test_missing_operator_screens_for_absent_data():
    s = default_screening()
    flags = s.evaluate({"residents": {"moved_in_from": "082201"}})
    assert [f.rule_id for f in flags] == ["moved_in_no_school_data"]
    assert s.evaluate({"residents": {"moved_in_from": "082201"}, "school": {"absence_days": "0"}}) == ()


def test_list_is_sorted_by_score_and_capped():
    s = parse_screening(RULES)
    persons = {
        "P3": {"maternal": {"checkup_missed": "1"}},
        "P1": {"school": {"absence_days": "31", "school_aid": "0"}, "maternal": {"checkup_missed": "1"}},
        "P2": {"school": {"absence_days": "60", "school_aid": "0"}},
        "P4": {"school": {"absence_days": "3", "school_aid": "0"}},
    }
    result = s.screen(persons)
    assert [e.person_id for e in result.entries] == ["P1", "P2"]
    assert [e.score for e in result.entries] == [4, 3]
    assert result.flagged == 3 and result.left_out == 1


def test_invalid_file_is_a_clear_error(tmp_path):
    bad = dict(RULES, rules=[dict(RULES["rules"][0], all=[{"source": "school", "attribute": "x", "op": "~="}])])
    with pytest.raises(ScreeningError, match="op"):
        parse_screening(bad)
    f = tmp_path / "s.toml"
    f.write_text("version = [", encoding="utf-8")
    with pytest.raises(ScreeningError, match="TOML"):
        load_screening(f)
    with pytest.raises(ScreeningError, match="見つかりません"):
        load_screening(tmp_path / "none.toml")
