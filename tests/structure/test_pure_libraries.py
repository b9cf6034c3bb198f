"""The pure libraries are pure: read every module of ``linkage/``, ``keys/``, ``transparency/`` and ``policy/`` and check its imports.

A pure library takes its inputs as arguments and returns results: no
database (SQLAlchemy, sqlite3), no HTTP (clients or servers), no import of a
shell (the services, their base, the agents, the command line), and no
module-level state a function rebinds (``global``) or changes (a module-level
dict, list or set that a function writes into). Constant lookup tables
filled once at import are fine. The shells — ``agents/``,
``gateway/``, ``escrow/``, ``service/``, ``tsunagu/`` — do the I/O.

This reads the source (``ast``); it imports nothing, so it also catches an
import inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARIES = ("linkage", "keys", "transparency", "policy")
#: Top-level modules a pure library may not import, and why.
FORBIDDEN = {
    "sqlalchemy": "a database", "sqlite3": "a database", "alembic": "a database", "psycopg": "a database",
    "httpx": "an HTTP client", "requests": "an HTTP client", "urllib3": "an HTTP client", "aiohttp": "an HTTP client",
    "http": "HTTP", "urllib.request": "an HTTP client", "fastapi": "an HTTP server", "starlette": "an HTTP server",
    "uvicorn": "an HTTP server",
    "gateway": "a shell", "escrow": "a shell", "service": "a shell", "agents": "a shell", "tsunagu": "a shell",
}
#: Violations not fixed yet, each with the issue that will: (module, what) pairs.
EXEMPT: dict[tuple[str, str], str] = {}
_MUTATORS = {"append", "extend", "insert", "update", "setdefault", "pop", "popitem", "clear", "add", "discard", "remove"}


def _modules() -> list[Path]:
    return sorted(p for lib in LIBRARIES for p in (ROOT / lib).rglob("*.py"))


def _violations(path: Path) -> list[tuple[int, str, str]]:
    """(line, what, why) for every forbidden import or ``global`` statement in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = [(line, "state", f"a function changes the module-level {name}") for line, name in _changed_module_state(tree)]
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Global):
            found.append((node.lineno, "global", f"rebinds module state ({', '.join(node.names)})"))
        for name in names:
            for forbidden, why in FORBIDDEN.items():
                if name == forbidden or name.startswith(forbidden + "."):
                    found.append((node.lineno, forbidden, why))
    return found


def _changed_module_state(tree: ast.Module) -> list[tuple[int, str]]:
    """Module-level containers (dict, list, set displays or calls) that some function writes into."""
    containers = set()
    for node in tree.body:
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if isinstance(value, (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)) or (
                isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in ("dict", "list", "set")):
            containers.update(t.id for t in targets if isinstance(t, ast.Name))
    changed = []
    for function in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        for node in ast.walk(function):
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
                for target in node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]:
                    if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and target.value.id in containers:
                        changed.append((node.lineno, target.value.id))
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATORS
                  and isinstance(node.func.value, ast.Name) and node.func.value.id in containers):
                changed.append((node.lineno, node.func.value.id))
    return changed


def test_the_check_finds_what_it_looks_for(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import sqlite3\nfrom sqlalchemy.engine import Engine\n_pool = None\n_cache = {}\nTABLE = {'a': 1}\n"
                   "def f():\n    global _pool\n    import httpx\n    from gateway.core import Gateway\n"
                   "    _cache['k'] = 1\n    return TABLE['a']\n", encoding="utf-8")
    assert sorted(what for _, what, _ in _violations(bad)) == ["gateway", "global", "httpx", "sqlalchemy", "sqlite3", "state"]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_pure_library_module_does_no_io_and_keeps_no_module_state(path: Path) -> None:
    name = str(path.relative_to(ROOT))
    problems = [f"{name}:{line}: imports {what} ({why})" if what != "global" else f"{name}:{line}: {why}"
                for line, what, why in _violations(path) if (name, what) not in EXEMPT]
    assert not problems, "\n".join(problems)


def test_every_exemption_is_still_needed() -> None:
    stale = [f"{name}: {what}" for (name, what) in EXEMPT
             if not any(v[1] == what for v in _violations(ROOT / name))]
    assert not stale, f"fixed — remove from EXEMPT: {stale}"
