"""`tsunagu bench attack` on a small town: every attack runs and reports figures in range; the old schema leaks, the new one does not."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tsunagu import bench_attack as ba
from tsunagu import benchmarks as b
from tsunagu.cli import app


def _towns(children: int = 600):
    return b.town_dataset(children, 21).sources["residents"], b.town_dataset(children, 22).sources["residents"]


def test_every_attack_reports_a_share_and_a_precision_in_range() -> None:
    victim, public = _towns()
    variants = ba.variants()
    old = ba.run_variant("old", *variants["tsunagu-jp/1 (as shipped before)"][:1], victim, public,
                         sorted_order=True, padded=False, known_dates=20)
    new = ba.run_variant("new", variants["tsunagu-jp/2"][0], victim, public, sorted_order=False, padded=True, known_dates=20)
    for report in (old, new):
        attacks = {f.attack for f in report.findings}
        assert {"frequency alignment", "bigram atoms", "similarity graph", "row order", "sealed size"} <= attacks
        assert any(a.startswith("date from") for a in attacks)
        for f in report.findings:
            assert 0.0 <= f.recovered <= 1.0 and 0.0 <= f.precision <= 1.0, f
    old_by = {(f.attack, f.field): f for f in old.findings}
    new_by = {(f.attack, f.field): f for f in new.findings}
    # What the old schema, sorted submissions and unpadded seals gave away, measurably:
    assert old_by[("frequency alignment", "family")].recovered > 0.0
    assert old_by[("row order", "family")].recovered > 0.05
    assert old_by[("date from blocking tokens (+ 20 known)", "birth_ym")].recovered > 0.05
    # ... and the new encoding: no identical units, no atoms, no exact-date classes, one sealed size.
    assert new_by[("frequency alignment", "family")].recovered == 0.0
    assert "no atoms" in new_by[("bigram atoms", "family")].note
    assert new_by[("date from blocking tokens (+ 20 known)", "birth_date")].recovered == 0.0
    assert new_by[("sealed size", "family")].note == "1 distinct sizes"
    assert new.worst(ba.FIELDS) <= 0.02


def test_the_command_writes_its_table_and_chart(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "attack", "--children", "300", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "attack.png").stat().st_size > 0
    text = (tmp_path / "attack.md").read_text(encoding="utf-8")
    assert "tsunagu-jp/2" in text and "frequency alignment" in text
