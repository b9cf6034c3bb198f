"""The common-surname list of the support notes' check is policy data shipped with ``policy``, not read from test data."""

from __future__ import annotations

import ast
import fnmatch
import tomllib
from importlib import resources
from pathlib import Path

from policy import support

ROOT = Path(__file__).resolve().parents[3]


def test_the_list_is_read_from_the_policy_package() -> None:
    names = support._surnames()
    assert len(names) > 200 and all(len(n) >= 2 and not n.startswith("#") for n in names)
    assert names[:3] == ("佐藤", "鈴木", "高橋")  # most frequent first
    assert resources.files("policy").joinpath(support.SURNAMES_FILE).is_file()


def test_a_note_naming_a_listed_surname_is_refused_and_a_plain_note_is_not() -> None:
    assert "佐藤" in (support.note_problem("佐藤の件で連絡あり") or "")
    assert support.note_problem("面談の日程を調整中") is None


def test_policy_support_reads_no_synthetic_data() -> None:
    tree = ast.parse((ROOT / "policy" / "support.py").read_text(encoding="utf-8"))
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert not [s for s in strings if s == "synthetic" or "surnames.csv" in s]


def test_pyproject_ships_the_list_as_package_data() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]
    assert any(fnmatch.fnmatch(support.SURNAMES_FILE, pattern) for pattern in data.get("policy", []))
