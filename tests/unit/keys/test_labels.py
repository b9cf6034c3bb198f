"""Every key-derivation label lives in ``keys/labels.py``, once: unique, prefix-free, and spelt nowhere else.

Labels are read from the module; the other modules are read as source
(``ast``), so a label copied into a string anywhere in the product — the
way two derivations drift apart — fails here. Docstrings may describe a
label; code may not spell one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from keys import labels

ROOT = Path(__file__).resolve().parents[3]
PRODUCT = ("agents", "escrow", "gateway", "keys", "linkage", "policy", "service", "transparency", "tsunagu")
#: Labels at least this long are searched for inside every string; shorter ones ("blocking") are common words,
#: so for them only the purpose given to ``derive_key`` is checked.
LONG = 10
#: Modules that still spell a label, each with the issue that removes it.
EXEMPT: dict[str, str] = {}


def _labels() -> dict[str, bytes]:
    return {name: value.encode("utf-8") if isinstance(value, str) else value
            for name, value in vars(labels).items() if name.isupper() and isinstance(value, (str, bytes))}


def test_every_label_is_unique_and_none_is_a_prefix_of_another() -> None:
    found = _labels()
    assert len(found) >= 10
    for a, va in found.items():
        for b, vb in found.items():
            assert a == b or not vb.startswith(va), f"{a} is a prefix of {b}"


def _docstrings(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _spelt(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    docs = _docstrings(tree)
    long = {name: value for name, value in _labels().items() if len(value) >= LONG}
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)) and id(node) not in docs:
            raw = node.value.encode("utf-8", "surrogatepass") if isinstance(node.value, str) else node.value
            problems += [f"line {node.lineno}: spells labels.{name}" for name, value in long.items() if value in raw]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "derive_key":
            problems += [f"line {node.lineno}: derive_key with a literal purpose" for arg in node.args[1:2]
                         if isinstance(arg, (ast.Constant, ast.JoinedStr))]
    return problems


def _modules() -> list[Path]:
    return sorted(p for package in PRODUCT for p in (ROOT / package).rglob("*.py") if p != ROOT / "keys" / "labels.py")


def test_the_check_finds_a_copied_label(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('"""Docstrings may say tsunagu/seal/v1/record\\x00."""\nINFO = b"tsunagu/seal/v1/record\\x00"\n'
                   'key = derive_key(secret, f"segment|{group}")\n', encoding="utf-8")
    assert _spelt(bad) == ["line 2: spells labels.SEAL_RECORD", "line 3: derive_key with a literal purpose"]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_outside_keys_labels_spells_a_label(path: Path) -> None:
    name = str(path.relative_to(ROOT))
    if name in EXEMPT:
        assert _spelt(path), f"{name} no longer spells a label — remove it from EXEMPT"
        return
    assert not _spelt(path), f"{name}: " + "; ".join(_spelt(path))
