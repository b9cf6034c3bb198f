"""`tsunagu link` as a user runs it: outputs, the row report, and every kind of bad input."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from synthetic import generate_town

TSUNAGU = [sys.executable, "-m", "tsunagu.cli"]
HEADER = "record_id,family_name,given_name,family_name_kana,given_name_kana,birth_date,sex,address\n"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*TSUNAGU, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def read_clusters(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def town_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("town")
    town = generate_town(n_children=1500, seed=3)
    town.write(out, encodings={"school": "cp932", "maternal": "utf-8-sig"})
    return out


def test_link_writes_every_record_and_prints_quality(town_dir, tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"k" * 40)
    out = tmp_path / "clusters.csv"
    files = [str(town_dir / f"{s}.csv") for s in ("residents", "school", "maternal", "npo")]
    proc = run("link", *files, "--out", str(out), "--secret-file", str(secret), "--truth", str(town_dir / "truth.csv"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = read_clusters(out)
    with (town_dir / "truth.csv").open(encoding="utf-8") as fh:
        truth = {(r["source"], r["record_id"]) for r in csv.DictReader(fh)}
    assert {(r["source"], r["record_id"]) for r in rows} == truth
    assert "全体" in proc.stdout and "適合率" in proc.stdout
    assert "乱数の連携鍵" not in proc.stderr


def test_without_secret_file_says_a_fresh_secret_is_used(town_dir, tmp_path):
    out = tmp_path / "c.csv"
    proc = run("link", str(town_dir / "residents.csv"), str(town_dir / "npo.csv"), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "乱数の連携鍵" in proc.stderr


def test_bad_rows_are_reported_with_file_row_column_and_good_rows_still_link(tmp_path):
    # A2's impossible date (2月30日) is a typo: the row is reported and still links on 2015-02.
    a = tmp_path / "a.csv"
    a.write_text(
        HEADER
        + "A1,山田,太郎,ヤマダ,タロウ,2015-04-01,1,本町1-1\n"
        + "A2,山田,花子,ヤマダ,ハナコ,2015-02-30,2,本町1-1\n"  # impossible date
        + "A1,佐藤,一郎,サトウ,イチロウ,2014-01-01,1,本町2-2\n"  # duplicate record_id
        + "A4,鈴木,次郎,スズキ,ジロウ,2013-03-03,X,本町3-3\n",  # bad sex code
        encoding="utf-8",
    )
    b = tmp_path / "b.csv"
    b.write_text(HEADER + "B1,山田,太郎,やまだ,たろう,H27.4.1,男,本町1-1\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    proc = run("link", str(a), str(b), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = list(csv.DictReader((tmp_path / "out.report.csv").open(encoding="utf-8")))
    by_row = {(Path(r["file"]).name, int(r["row"])): r for r in report}
    assert by_row[("a.csv", 3)]["column"] == "birth_date" and by_row[("a.csv", 3)]["status"] == "連携済み"
    assert "2015年2月" in by_row[("a.csv", 3)]["reason"]
    assert by_row[("a.csv", 4)]["status"] == "除外"
    assert by_row[("a.csv", 4)]["column"] == "record_id" and "重複" in by_row[("a.csv", 4)]["reason"]
    assert by_row[("a.csv", 5)]["column"] == "sex"
    assert "連携できなかった行: 2 件" in proc.stderr
    assert "使える部分だけで連携した行: 1 件" in proc.stderr
    rows = read_clusters(out)
    assert {(r["source"], r["record_id"]) for r in rows} == {("a", "A1"), ("a", "A2"), ("b", "B1")}
    cluster = {r["record_id"]: r["cluster_id"] for r in rows}
    assert cluster["A1"] == cluster["B1"]


def test_missing_column_names_the_file_and_suggests_the_typo(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("recordid,family_name,birth_date\nA1,山田,2015-04-01\n", encoding="utf-8")
    b = tmp_path / "b.csv"
    b.write_text(HEADER, encoding="utf-8")
    proc = run("link", str(a), str(b), "--out", str(tmp_path / "o.csv"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "a.csv" in proc.stderr and "record_id" in proc.stderr and "「recordid」は「record_id」" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_undecodable_bytes_name_the_row(tmp_path):
    a = tmp_path / "a.csv"
    a.write_bytes(HEADER.encode() + "A1,山田,太郎,ヤマダ,タロウ,2015-04-01,1,本町\n".encode("cp932"))
    b = tmp_path / "b.csv"
    b.write_text(HEADER, encoding="utf-8")
    proc = run("link", str(a), str(b), "--out", str(tmp_path / "o.csv"), "--encoding", "utf-8", cwd=tmp_path)
    assert proc.returncode == 2
    assert "a.csv 行2" in proc.stderr and "--encoding" in proc.stderr
    assert "Traceback" not in proc.stderr
    # Without --encoding the same file is detected as CP932 and links.
    proc = run("link", str(a), str(b), "--out", str(tmp_path / "o.csv"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_empty_file_and_missing_file_are_clear_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    b = tmp_path / "b.csv"
    b.write_text(HEADER, encoding="utf-8")
    proc = run("link", str(empty), str(b), "--out", str(tmp_path / "o.csv"), cwd=tmp_path)
    assert proc.returncode == 2 and "空" in proc.stderr
    proc = run("link", str(tmp_path / "nope.csv"), str(b), "--out", str(tmp_path / "o.csv"), cwd=tmp_path)
    assert proc.returncode == 2 and "見つかりません" in proc.stderr


def test_link_reads_files_as_agents_do_gaiji_table_and_stray_bytes(tmp_path):
    """One reader (agents.core.read): the agents' 外字 table applies, and a byte CP932 has no character for is named."""
    a = tmp_path / "a.csv"
    a.write_bytes(HEADER.encode() + "A1,".encode() + b"\xf0\x40" + ",太郎,タカダ,タロウ,2015-04-01,1,本町\n".encode("cp932"))
    b = tmp_path / "b.csv"
    b.write_text(HEADER + "B1,髙田,太郎,タカダ,タロウ,2015-04-01,1,本町\n", encoding="utf-8")
    table = tmp_path / "gaiji.toml"
    table.write_text('[gaiji]\n"U+E000" = "髙"\n', encoding="utf-8")
    proc = run("link", str(a), str(b), "--out", str(tmp_path / "o.csv"), "--gaiji", str(table), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with (tmp_path / "o.csv").open(encoding="utf-8") as fh:
        cluster = {r["record_id"]: r["cluster_id"] for r in csv.DictReader(fh)}
    assert cluster["A1"] == cluster["B1"]  # 外字 U+E000 read as 髙 through the table
    stray = tmp_path / "c.csv"
    stray.write_bytes(HEADER.encode() + "C1,山田".encode("cp932") + b"\xa0" + ",太郎,ヤマダ,タロウ,2015-04-01,1,本町\n".encode("cp932"))
    proc = run("link", str(stray), str(b), "--out", str(tmp_path / "o2.csv"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "c.csv 行2" in proc.stderr and "2 列目" in proc.stderr and "0xA0" in proc.stderr
    assert "Traceback" not in proc.stderr
