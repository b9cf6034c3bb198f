"""Tests for synthetic: a deterministic town whose truth covers every record."""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from datetime import date

import pytest

from linkage.record import IDENTITY_COLUMNS
from synthetic import Town, generate_town
from synthetic._sources import school_grade
from synthetic._tables import load_tables

KANJI = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff]")
NAME_COLUMNS = ("family_name", "given_name", "family_name_kana", "given_name_kana", "full_name", "full_name_kana")


@pytest.fixture(scope="module")
def town() -> Town:
    return generate_town(n_children=6000, seed=3)


def _by_person(town: Town) -> dict[str, dict[str, dict[str, str]]]:
    """person_id -> source -> row."""
    rows = {s: {r["record_id"]: r for r in rows} for s, rows in town.sources.items()}
    people: dict[str, dict[str, dict[str, str]]] = defaultdict(dict)
    for source, record_id, person in town.truth:
        people[person][source] = rows[source][record_id]
    return people


def test_same_seed_same_town_other_seed_other_town():
    a, b, c = generate_town(800, seed=11), generate_town(800, seed=11), generate_town(800, seed=12)
    assert a.sources == b.sources and a.truth == b.truth
    assert a.sources != c.sources


def test_every_record_is_in_truth_exactly_once(town):
    records = [(s, r["record_id"]) for s, rows in town.sources.items() for r in rows]
    truth = [(s, rid) for s, rid, _ in town.truth]
    assert len(records) == len(set(records))
    assert Counter(truth) == Counter(records)


def test_each_person_has_at_most_one_record_per_source_and_one_resident_record(town):
    per_source = Counter((s, p) for s, _, p in town.truth)
    assert max(per_source.values()) == 1
    residents = {p for s, _, p in town.truth if s == "residents"}
    assert len(residents) == town.n_children == len(town.sources["residents"])
    assert {p for _, _, p in town.truth} == residents


def test_rows_have_canonical_columns_as_strings(town):
    for source, rows in town.sources.items():
        expected = town.columns(source)
        assert expected[: len(IDENTITY_COLUMNS)] == IDENTITY_COLUMNS
        for row in rows:
            assert tuple(row) == expected
            assert all(isinstance(v, str) for v in row.values())


def test_sources_have_their_ages(town):
    people = _by_person(town)
    for person in people.values():
        birth = date.fromisoformat(person["residents"]["birth_date"])
        age = town.as_of.year - birth.year - ((town.as_of.month, town.as_of.day) < (birth.month, birth.day))
        assert 0 <= age <= 17
        if "school" in person:
            assert 6 <= age <= 15
            assert 1 <= school_grade(birth, town.as_of) <= 9
        if "maternal" in person:
            assert age <= 5
    assert len(town.sources["school"]) > 0.4 * town.n_children
    assert 0.02 * town.n_children < len(town.sources["npo"]) < 0.06 * town.n_children


def test_twins_share_birth_date_surname_and_address_but_not_given_name(town):
    groups = defaultdict(list)
    for row in town.sources["residents"]:
        if row["family_name"]:
            groups[(row["family_name"], row["birth_date"], row["address"])].append(row)
    twins = [g for g in groups.values() if len(g) > 1]
    assert len(twins) >= 0.003 * town.n_children
    for group in twins:
        assert len({r["given_name"] for r in group}) == len(group)


def test_npo_has_no_kanji_names(town):
    for row in town.sources["npo"]:
        assert not any(KANJI.search(row[c]) for c in NAME_COLUMNS)
        assert not row["family_name"] and not row["given_name"] and not row["full_name"]


def test_itaiji_registered_in_residents_and_common_form_at_school(town):
    common_form = load_tables().common_form
    people = _by_person(town)
    with_itaiji = [p for p in people.values() if any(ch in common_form for ch in p["residents"]["family_name"])]
    assert 0.03 * len(people) < len(with_itaiji) < 0.1 * len(people)
    at_school = [p for p in with_itaiji if "school" in p]
    common = 0
    for person in at_school:
        registered = person["residents"]["family_name"]
        school_name = person["school"]["full_name"]
        if school_name.startswith("".join(common_form.get(ch, ch) for ch in registered)):
            common += 1
        assert not any(ch in common_form for ch in school_name)
    assert common > 0.8 * len(at_school)


def test_school_formats(town):
    rows = town.sources["school"]
    assert all(re.fullmatch(r"S\d{7}", r["record_id"]) for r in rows)
    assert {r["sex"] for r in rows} == {"男", "女"}
    births = [r["birth_date"] for r in rows]
    assert any(re.fullmatch(r"[HR]\d{2}\.\d{2}\.\d{2}", b) for b in births)
    assert any(re.fullmatch(r"[HR]\d{1,2}\.\d{1,2}\.\d{1,2}", b) and len(b) < 9 for b in births)
    assert any(b.startswith("平成") for b in births)
    no_space = sum(1 for r in rows if "\u3000" not in r["full_name"] and " " not in r["full_name"])
    assert 0.1 < no_space / len(rows) < 0.3
    kana = "".join(r["full_name_kana"] for r in rows)
    assert re.fullmatch(r"[\u3041-\u309f\u30fc\u3000]*", kana)


def test_reiwa_births_reach_school_a_year_later():
    births = [r["birth_date"] for r in generate_town(1500, seed=5, as_of=date(2026, 4, 1)).sources["school"]]
    assert any(b.startswith("令和元年") for b in births)
    assert any(re.fullmatch(r"R0?1\.0?[5-9]\.\d{1,2}|R0?1\.1[0-2]\.\d{1,2}", b) for b in births)


def test_maternal_and_residents_formats(town):
    maternal = town.sources["maternal"]
    assert all(re.fullmatch(r"\d{8}", r["birth_date"]) for r in maternal)
    assert {r["sex"] for r in maternal} == {"M", "F"}
    assert any("ﾞ" in r["family_name_kana"] + r["given_name_kana"] for r in maternal)
    blank = sum(1 for r in maternal if not r["family_name_kana"])
    assert 0.01 < blank / len(maternal) < 0.06
    residents = town.sources["residents"]
    assert all(re.fullmatch(r"\d{10}", r["record_id"]) for r in residents)
    assert {r["sex"] for r in residents} == {"1", "2"}
    assert any(re.fullmatch(r"[A-Za-z ]+", r["family_name"] or r["full_name"]) for r in residents)
    moved = [r["moved_in_from"] for r in residents if r["moved_in_from"]]
    assert 0.02 < len(moved) / len(residents) < 0.09


def test_foreign_children_have_alphabet_names_and_a_school_alias(town):
    codes = {n.latin: n.kanji for parts in load_tables().foreign.values() for n in parts["family"]}
    found = 0
    for person in _by_person(town).values():
        resident = person["residents"]
        latin = resident["family_name"] or resident["full_name"]
        if "school" not in person or not re.fullmatch(r"[A-Za-z ]+", latin):
            continue
        found += 1
        family = resident["family_name"] or next(w for w in latin.split() if w in codes)
        if codes.get(family):
            assert person["school"]["full_name"].startswith(codes[family])
    assert found > 0


def test_municipality_codes_have_valid_check_digits():
    for m in load_tables().municipalities:
        digits = [int(c) for c in m.code]
        check = (11 - sum(d * w for d, w in zip(digits, (6, 5, 4, 3, 2))) % 11) % 10
        assert digits[5] == check, m


def test_write_utf8_and_cp932_with_geta(tmp_path, town):
    paths = town.write(tmp_path / "utf8")
    assert [p.name for p in paths] == ["residents.csv", "school.csv", "maternal.csv", "npo.csv", "truth.csv"]
    with open(paths[0], encoding="utf-8", newline="") as f:
        assert list(csv.DictReader(f)) == town.sources["residents"]
    with open(paths[-1], encoding="utf-8", newline="") as f:
        assert [tuple(r) for r in list(csv.reader(f))[1:]] == [tuple(t) for t in town.truth]

    paths = town.write(tmp_path / "sjis", encodings={"school": "cp932", "residents": "cp932", "npo": "utf-8-sig"})
    with open(tmp_path / "sjis" / "school.csv", encoding="cp932", newline="") as f:
        assert list(csv.DictReader(f)) == town.sources["school"]
    outside_cp932 = re.compile("[\U00010000-\U0010ffff]")
    with open(tmp_path / "sjis" / "residents.csv", encoding="cp932", newline="") as f:
        written = list(csv.DictReader(f))
    expected = [{k: outside_cp932.sub("〓", v) for k, v in row.items()} for row in town.sources["residents"]]
    assert written == expected
    assert any("〓" in r["family_name"] for r in written)
    with open(tmp_path / "sjis" / "npo.csv", encoding="utf-8-sig", newline="") as f:
        assert list(csv.DictReader(f)) == town.sources["npo"]


def test_cp932_writes_characters_outside_cp932_as_geta(tmp_path):
    row = dict.fromkeys(IDENTITY_COLUMNS + ("absence_days", "school_aid"), "")
    row.update(record_id="S0000001", full_name="𠮷田\u3000髙志", full_name_kana="よしだ\u3000たかし")
    town = Town(seed=0, n_children=1, as_of=date(2025, 4, 1), sources={"school": [row]},
                truth=[("school", "S0000001", "P0000001")])
    (path, _) = town.write(tmp_path, encodings={"school": "cp932"})
    with open(path, encoding="cp932", newline="") as f:
        written = list(csv.DictReader(f))[0]
    assert written["full_name"] == "〓田\u3000髙志"
    assert town.sources["school"][0]["full_name"] == "𠮷田\u3000髙志"


def test_write_rejects_unknown_encodings_and_sources(tmp_path, town):
    with pytest.raises(ValueError, match="shift_jis"):
        town.write(tmp_path, encodings={"school": "shift_jis"})
    with pytest.raises(ValueError, match="unknown source"):
        town.write(tmp_path, encodings={"welfare": "cp932"})
