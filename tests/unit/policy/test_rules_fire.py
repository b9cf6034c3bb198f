"""The shipped screening rules fire on the presets' sample data, read through the presets' own mappings and linked.

The samples hold the departments' own words (受診 / 未受診, 受給, 1 / 0); the
mappings turn them into the catalog's canonical codes, the rules are written
against those codes, and every rule must flag at least one sample child.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from agents.core.config import load_mapping
from agents.core.read import GaijiTable, read_table
from agents.core.validate import validate
from keys.linkage_secret import generate_linkage_secret
from linkage.encode import encode_sources
from linkage.match import link
from policy.attributes import default_catalog
from policy.screening import check_against_data, check_rules, default_screening

PRESETS = Path(__file__).resolve().parents[3] / "agents"
SAMPLES = [
    ("edu_network", "school", "school.csv"),
    ("mynumber_network", "residents", "residents.csv"),
    ("mynumber_network", "maternal", "maternal.tsv"),
    ("internet_network", "npo", "npo.csv"),
]


def _gaiji(preset: str) -> GaijiTable:
    path = PRESETS / preset / "samples" / "gaiji.toml"
    return GaijiTable.load(path) if path.exists() else GaijiTable()


@pytest.fixture(scope="module")
def sample_persons() -> dict[str, dict[str, dict[str, str]]]:
    """``{cluster: {source: attributes}}`` of the presets' samples, linked as the gateway would."""
    validated = []
    for preset, source, file in SAMPLES:
        mapping = load_mapping(PRESETS / preset / "mappings" / f"{source}.toml")
        result = validate(read_table(PRESETS / preset / "samples" / file, mapping, _gaiji(preset)), mapping)
        assert not result.problems, [p.reason for p in result.problems][:3]
        validated.append((source, result.records))
    secret = generate_linkage_secret()
    encoded = encode_sources([records for _, records in validated], secret.secret, secret.key_id)
    result = link([enc for enc, _index, _errors in encoded])
    persons: dict[str, dict[str, dict[str, str]]] = {}
    for number, members in enumerate(result.clusters):
        for s, r in members:
            source, records = validated[s]
            record = records[int(encoded[s][1][r])]
            persons.setdefault(f"C{number}", {}).setdefault(source, {}).update(record.attributes)
    return persons


def test_mappings_deliver_canonical_codes(sample_persons):
    catalog = default_catalog()
    seen = Counter((source, name, value) for attrs in sample_persons.values() for source, values in attrs.items()
                   for name, value in values.items() if value and catalog.codes(name))
    assert seen and all(value in catalog.codes(name) for _source, name, value in seen), seen
    assert ("maternal", "checkup_missed", "missed") in seen  # 未受診 arrives as the canonical code


def test_every_shipped_rule_fires_on_the_samples(sample_persons):
    rules = default_screening()
    assert check_rules(rules) == []
    hits = Counter(flag.rule_id for attrs in sample_persons.values() for flag in rules.evaluate(attrs))
    assert {rule.id for rule in rules.rules} == {rule_id for rule_id, n in hits.items() if n >= 1}, hits
    assert check_against_data(rules, sample_persons) == []


def _demo_town(tmp_path: Path) -> tuple[dict[str, Path], dict[tuple[str, str], str]]:
    from synthetic.samples import write_samples

    paths = write_samples(tmp_path, children=2000, seed=2026)  # the town `make demo` gives its agents
    import csv

    with paths["truth"].open(encoding="utf-8") as fh:
        truth = {(r["source"], r["record_id"]): r["person_id"] for r in csv.DictReader(fh)}
    return paths, truth


def test_demo_town_every_child_the_rules_should_flag_is_flagged(tmp_path):
    """Oracle from the departments' own words (未受診, 受給) against the rules run on what the mappings deliver."""
    import csv

    paths, truth = _demo_town(tmp_path)
    gaiji = GaijiTable.load(paths["gaiji"])
    persons: dict[str, dict[str, dict[str, str]]] = {}
    for preset, source in (("edu_network", "school"), ("mynumber_network", "residents"), ("mynumber_network", "maternal")):
        mapping = load_mapping(PRESETS / preset / "mappings" / f"{source}.toml")
        result = validate(read_table(paths[source], mapping, gaiji), mapping)
        assert not result.problems
        for record in result.records:
            persons.setdefault(truth[(source, record.record_id)], {})[source] = record.attributes
    with paths["maternal"].open(encoding="utf-8") as fh:
        missed = {truth[("maternal", r["対象者番号"])] for r in csv.DictReader(fh, delimiter="\t") if r["乳幼児健診"] == "未受診"}
    with paths["residents"].open(encoding="cp932") as fh:
        allowance = {truth[("residents", r["宛名番号"])] for r in csv.DictReader(fh) if r["児童扶養手当"] == "受給"}
    rules = default_screening()
    flagged: dict[str, set[str]] = {}
    for person, attributes in persons.items():
        for flag in rules.evaluate(attributes):
            flagged.setdefault(flag.rule_id, set()).add(person)
    assert len(missed) >= 30 and flagged["checkup_missed"] == missed
    assert missed & allowance and flagged["checkup_missed_with_allowance"] == missed & allowance


def test_rule_on_an_undeclared_value_is_reported():
    from policy.screening import parse_screening

    rules = parse_screening({"version": 1, "capacity": 5, "rules": [
        {"id": "old", "label": "健診未受診（旧）", "weight": 1,
         "all": [{"source": "maternal", "attribute": "checkup_missed", "op": "==", "value": "1"}]},
        {"id": "typo", "label": "欠席", "weight": 1, "all": [{"source": "school", "attribute": "absense_days", "op": ">=", "value": 30}]},
    ]})
    kinds = {(p.rule_id, p.kind) for p in check_rules(rules)}
    assert kinds == {("old", "unknown_value"), ("typo", "unknown_attribute")}
    problem = next(p for p in check_rules(rules) if p.rule_id == "old")
    assert "乳幼児健診" in problem.message and "missed（未受診）" in problem.message


def test_rule_matching_no_one_while_data_holds_raw_words_is_reported():
    rules = default_screening()
    persons = {"P1": {"maternal": {"checkup_missed": "未受診"}}, "P2": {"maternal": {"checkup_missed": "受診"}}}
    problems = [p for p in check_against_data(rules, persons) if p.rule_id == "checkup_missed"]
    assert len(problems) == 1 and "「未受診」1 件" in problems[0].message and "[values]" in problems[0].message
    assert not [p for p in check_against_data(rules, {"P1": {"maternal": {"checkup_missed": "missed"}}}) if p.rule_id == "checkup_missed"]


def test_mapping_refuses_a_word_it_does_not_know(tmp_path):
    mapping = load_mapping(PRESETS / "mynumber_network" / "mappings" / "maternal.toml")
    sample = (PRESETS / "mynumber_network" / "samples" / "maternal.tsv").read_text(encoding="utf-8").splitlines()
    header, first = sample[0], sample[1].rsplit("\t", 1)[0] + "\t未受信"
    path = tmp_path / "maternal.tsv"
    path.write_text("\n".join([header, first, *sample[2:4]]) + "\n", encoding="utf-8")
    result = validate(read_table(path, mapping, GaijiTable()), mapping)
    assert len(result.records) == 2 and len(result.problems) == 1
    problem = result.problems[0]
    assert (problem.row, problem.column) == (2, "乳幼児健診") and "未受信" in problem.reason and "[values.checkup_missed]" in problem.reason


def test_mapping_to_an_undeclared_code_is_refused(tmp_path):
    from agents.core.config import ConfigError

    text = (PRESETS / "mynumber_network" / "mappings" / "maternal.toml").read_text(encoding="utf-8").replace('= "missed"', '= "1"')
    path = tmp_path / "maternal.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="正規の値ではありません"):
        load_mapping(path)
