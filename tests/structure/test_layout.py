"""The product does not import the demo, the benchmarks or the synthetic town, and the gateway and the agents never import each other.

Read from the source (``ast``), like ``test_pure_libraries.py``: an import
inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("agents", "escrow", "gateway", "keys", "linkage", "policy", "service", "transparency", "tsunagu")
OUTSIDE = ("demo", "bench", "synthetic")
#: The one product module that runs the benchmarks: the ``tsunagu bench`` command.
RUNS_BENCH = "tsunagu/commands/bench.py"
#: Shells that meet only in the signed formats.
APART = {"gateway": "agents", "agents": "gateway"}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _modules() -> list[Path]:
    return sorted(p for package in PRODUCT for p in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_product_imports_no_demo_bench_or_synthetic_code_and_no_other_shell_across_the_boundary(path: Path) -> None:
    name = str(path.relative_to(ROOT))
    package = name.split("/")[0]
    problems = []
    for line, module in _imports(path):
        top = module.split(".")[0]
        if top in OUTSIDE and name != RUNS_BENCH:
            problems.append(f"{name}:{line}: imports {module} (outside the product)")
        if APART.get(package) == top:
            problems.append(f"{name}:{line}: imports {module} ({package}/ and {top}/ meet only in the signed formats)")
    assert not problems, "\n".join(problems)


def test_the_outside_packages_exist() -> None:
    assert all((ROOT / package / "__init__.py").is_file() for package in OUTSIDE)
