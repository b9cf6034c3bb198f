"""Split ``tests/`` into ``tests/unit/<package>/`` and ``tests/integration/<package>/``, mirroring the code; re-runnable.

The rule (also checked by ``tests/structure/test_test_layout.py``):

* **integration** — the module starts something real: a server (``tests.support.server``,
  uvicorn), a database server (the PostgreSQL fixtures, ``tests.support.postgres``), a
  browser (Playwright/Chromium), a process (``subprocess``: our CLI, a server) or a Dask
  cluster (``LocalCluster``) — itself, or through a helper, fixture or test module it uses;
* **unit** — everything else: in-process, no port, no child process of ours.

A module's package is the code it tests: ``tests/<folder>/`` maps to a package path
(``cli`` → ``tsunagu``, ``federation`` → ``gateway/federation``, ``web`` → ``gateway/web``,
``fuzz`` → ``service``; a module already under ``unit/`` or ``integration/`` keeps its
package path). ``tests/structure/`` (checks on the source tree as a whole) stays where it is.
Helpers (``tests/_*.py``, ``tests/<folder>/*_support.py``, a conftest with definitions)
move to the test support package ``tests/support/``; a package's conftest becomes a
thin one that imports its fixtures, placed in every directory that holds its tests. A
support module's *session* fixtures that several package conftests would import (the unit
and the integration tests of a package; the gateway's and the escrow's web tests) are
imported once instead, by the conftest of the packages' nearest common folder
(``tests/conftest.py``, ``tests/integration/conftest.py``, in a marked block): pytest makes
one instance of a session fixture per conftest that declares it. The package conftests
name what moved up in a comment line.

Then, everywhere in the repository, ``tests.<old>.<module>`` imports and ``tests/<old>/<file>.py``
mentions are rewritten to the new names, and ``Path(__file__).resolve().parents[N]`` in a moved
module is adjusted to its new depth. Modules move with ``git mv``.

Idempotent: run it again after merging branches that added or edited tests at the old places
(or made a unit module start a server): it moves only what is not where the rule puts it, and
rewrites only stale names. ``--check`` lists pending moves and exits 1 if there are any.

    python tools/split_tests.py [--check] [--dry-run]
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
KINDS = ("unit", "integration")
#: Folders that are not split.
KEEP = {"structure", "support", "unit", "integration", "__pycache__"}
#: Old folder → package path it tests.
FOLDER_PACKAGE = {"cli": "tsunagu", "federation": "gateway/federation", "web": "gateway/web", "fuzz": "service"}
#: Modules whose package is not their folder's (old path → package path).
MODULE_PACKAGE = {"tests/web/test_web_escrow_roles.py": "escrow/web"}
#: Helpers and conftests with definitions → their place in the support package.
SUPPORT = {
    "tests/_server.py": "tests/support/server.py",
    "tests/_postgres.py": "tests/support/postgres.py",
    "tests/_openapi.py": "tests/support/openapi.py",
    "tests/_frontdoor.py": "tests/support/frontdoor.py",
    "tests/gateway/gateway_support.py": "tests/support/gateway.py",
    "tests/web/web_support.py": "tests/support/web.py",
    "tests/federation/federation_support.py": "tests/support/federation.py",
    "tests/agents/conftest.py": "tests/support/agents.py",
    "tests/escrow/conftest.py": "tests/support/escrow.py",
}
#: Scaffolding outside tests/ that a test may start things through (``bench.fuzz.deploy``, ``demo.federation.run``).
SCAFFOLDING = ("bench", "demo", "synthetic")
#: Identifiers that mean "starts something real" (read as names, never from strings or comments).
SIGNALS = {"subprocess", "_server", "_postgres", "postgres_url", "fresh_postgres_url", "playwright", "sync_playwright",
           "LocalCluster", "uvicorn", "Popen"}
TEXT_SUFFIXES = {".py", ".md", ".toml", ".yml", ".yaml", ".cfg", ".txt", ".ini"}


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def module_of(path: str) -> str:
    return path[: -len(".py")].replace("/", ".").removesuffix(".__init__")


def path_of(module: str) -> str:
    return module.replace(".", "/") + ".py"


# --- reading a module ----------------------------------------------------------


@dataclass
class Info:
    path: str
    imports: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # local name → (module, name or None)
    defs: dict[str, set[str]] = field(default_factory=dict)  # top-level def/class → identifiers it uses
    idents: set[str] = field(default_factory=set)  # identifiers the module uses
    thin: bool = True  # only imports (a conftest that re-exports fixtures)


def _identifiers(node: ast.AST) -> set[str]:
    out = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name):
            out.add(f"{n.value.id}.{n.attr}")  # a module's name used through its alias
        elif isinstance(n, ast.arg):
            out.add(n.arg)
        elif isinstance(n, ast.alias):
            out.add((n.asname or n.name).split(".")[0])
        elif (isinstance(n, ast.Call) and isinstance(n.func, (ast.Attribute, ast.Name))
              and getattr(n.func, "attr", getattr(n.func, "id", "")) in ("getfixturevalue", "usefixtures")):
            out.update(a.value for a in n.args if isinstance(a, ast.Constant) and isinstance(a.value, str))
    return out


def read(path: Path, name: str | None = None) -> Info:
    """What the module at ``path`` imports, defines and uses (``name``: its path in the repository, if elsewhere)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    info = Info(name or rel(path))
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                info.imports[alias.asname or alias.name] = (node.module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                info.imports[alias.asname or alias.name.split(".")[0]] = (alias.name, None)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            info.defs[node.name] = _identifiers(node)
            info.thin = False
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue
        else:
            info.thin = False
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            # Inside a function: counts for what the function uses.
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                mod = node.module if isinstance(node, ast.ImportFrom) else alias.name
                if mod and name not in info.imports:
                    info.imports[name] = (mod, alias.name if isinstance(node, ast.ImportFrom) else None)
    info.idents = _identifiers(tree)
    return info


# --- where everything is and goes ----------------------------------------------


def tracked_tests() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def is_test(path: Path) -> bool:
    return path.name.startswith("test_") and path.suffix == ".py"


def package_of(path: Path) -> str | None:
    """The package path a test module under ``tests/`` tests, or None if it is not split."""
    parts = path.relative_to(TESTS).parts
    if len(parts) < 2 or parts[0] in KEEP - set(KINDS):
        return None
    if parts[0] in KINDS:
        return "/".join(parts[1:-1])
    return MODULE_PACKAGE.get(rel(path), FOLDER_PACKAGE.get(parts[0], parts[0]))


def resolve_module(module: str, modules: dict[str, str]) -> str | None:
    """The current name of ``tests.…`` module ``module`` (None: not a tests module or not found)."""
    if not module.startswith("tests.") or module in modules.values():
        return None
    old = path_of(module)
    if old in SUPPORT:
        return module_of(SUPPORT[old])
    if module in modules:
        return modules[module]
    base = module.rsplit(".", 1)[-1]
    found = sorted({m for m in modules.values() if m.rsplit(".", 1)[-1] == base and m.startswith("tests.")})
    return found[0] if len(found) == 1 and base != "conftest" else None


@dataclass
class Plan:
    moves: dict[str, str] = field(default_factory=dict)  # old path → new path (git mv)
    conftests: dict[str, str] = field(default_factory=dict)  # conftest path → text (written, then rewritten)
    removals: list[str] = field(default_factory=list)  # emptied old folders' __init__.py
    inits: list[str] = field(default_factory=list)  # new packages' __init__.py


def _hot_imports(info: Info, start: dict[str, set[str]], known: dict[str, str]) -> set[str]:
    """The names ``info`` imports that start something: a starting module, or a starting name of a module."""
    hot = set()
    for local, (mod, name) in info.imports.items():
        mod = known.get(mod) or resolve_module(mod, known) or mod
        sub = f"{mod}.{name}" if name else None
        sub = known.get(sub) or resolve_module(sub, known) or sub if sub else None
        if name is None and start.get(mod):
            hot |= {f"{local}.{n}" for n in start[mod]}
        elif sub in start and start[sub]:
            hot |= {f"{local}.{n}" for n in start[sub]}
        elif name in start.get(mod, set()):
            hot.add(local)
    return hot


def starters(infos: dict[str, Info]) -> dict[str, set[str]]:
    """Per module, the names it defines or imports that start something real (to a fixed point)."""
    by_module = {module_of(p): i for p, i in infos.items()}
    known = {m: m for m in by_module}
    start: dict[str, set[str]] = {m: set() for m in by_module}
    changed = True
    while changed:
        changed = False
        for m, info in by_module.items():
            hot = SIGNALS | start[m] | _hot_imports(info, start, known)
            found = {d for d, used in info.defs.items() if used & hot} | (hot & set(info.imports))
            if not found <= start[m]:
                start[m] |= found
                changed = True
    return start


def classify(infos: dict[str, Info], start: dict[str, set[str]], path: Path) -> str:
    """``integration`` or ``unit`` for the test module at ``path`` (see the module docstring)."""
    info = infos[rel(path)]
    hot = SIGNALS | start.get(module_of(info.path), set())
    # Fixtures from the conftests on the way up (the old folder's, or the new directories').
    folder = path.parent
    while folder != TESTS.parent:
        conf = rel(folder / "conftest.py")
        if conf in infos:
            hot |= start.get(module_of(conf), set())
        folder = folder.parent
    return "integration" if info.idents & hot else "unit"


def plan() -> Plan:
    paths = tracked_tests()
    infos = {rel(p): read(p) for p in paths}
    infos.update({rel(p): read(p) for d in SCAFFOLDING for p in sorted((ROOT / d).rglob("*.py"))})
    start = starters(infos)
    out = Plan()
    # Helpers to the support package.
    for old, new in SUPPORT.items():
        if (ROOT / old).exists() and not (ROOT / new).exists():
            out.moves[old] = new
    for p in paths:
        parts = p.relative_to(TESTS).parts
        if len(parts) == 2 and parts[0] not in KEEP and not is_test(p) and p.name not in ("__init__.py", "conftest.py") \
                and rel(p) not in SUPPORT:
            out.moves[rel(p)] = f"tests/support/{p.name}"
    # Test modules to unit/ or integration/.
    for p in paths:
        pkg = package_of(p)
        if pkg is None or not is_test(p):
            continue
        target = f"tests/{classify(infos, start, p)}/{pkg}/{p.name}"
        if target != rel(p):
            out.moves[rel(p)] = target
    # Conftests: a thin one per directory that holds a package's tests.
    texts: dict[str, str] = {}
    for p in paths:
        if p.name != "conftest.py" or p.parent == TESTS:
            continue
        parts = p.relative_to(TESTS).parts
        if parts[0] in KINDS:
            texts.setdefault("/".join(parts[1:-1]), p.read_text(encoding="utf-8"))
        elif parts[0] not in KEEP:
            pkg = FOLDER_PACKAGE.get(parts[0], parts[0])
            info = infos[rel(p)]
            if info.thin:
                if info.imports.keys() - {"annotations"}:  # a conftest with only a docstring is not copied
                    texts[pkg] = p.read_text(encoding="utf-8")
            else:
                support = SUPPORT.get(rel(p), f"tests/support/{parts[0]}_fixtures.py")
                out.moves.setdefault(rel(p), support)
                texts[pkg] = _fixture_conftest(parts[0], p, support)
            for module, other in MODULE_PACKAGE.items():
                if module.startswith(f"tests/{parts[0]}/") and pkg in texts:
                    texts.setdefault(other, texts[pkg])
    # A conftest made from a support module lists that module's fixtures as they are now.
    generated = set()
    for old, support in SUPPORT.items():
        folder = Path(old).parts[1]
        if old.endswith("/conftest.py") and not (ROOT / old).exists() and (ROOT / support).exists():
            pkg = FOLDER_PACKAGE.get(folder, folder)
            texts[pkg] = _fixture_conftest(folder, ROOT / support, support)
            generated.add(pkg)
    final = {rel(p) for p in paths} - set(out.moves) | set(out.moves.values())
    for f in sorted(final):
        parts = Path(f).parts
        if len(parts) > 3 and parts[1] in KINDS and Path(f).name.startswith("test_"):
            pkg = "/".join(parts[2:-1])
            conf = f"tests/{parts[1]}/{pkg}/conftest.py"
            stale = conf in final and pkg in generated and (ROOT / conf).read_text(encoding="utf-8") != texts[pkg]
            if pkg in texts and (conf not in final or stale) and conf not in out.conftests:
                out.conftests[conf] = texts[pkg]
    # Old folders left with only their __init__.py (and a thin conftest) go.
    for folder in sorted({Path(o).parent for o in out.moves}):
        if folder.parts[-1] in KEEP or folder == Path("tests"):
            continue
        left = [q for q in final if Path(q).parent == folder and Path(q).name not in ("__init__.py", "conftest.py")]
        if not left:
            out.removals += [rel(q) for q in (ROOT / folder).glob("*.py") if rel(q) not in out.moves]
    _share(out, final)
    # Every new directory is a package.
    for f in sorted(final | set(out.conftests)):
        d = Path(f).parent
        while d != Path("tests"):
            init = d / "__init__.py"
            if init.as_posix() not in final and not (ROOT / init).exists() and init.as_posix() not in out.inits:
                out.inits.append(init.as_posix())
            d = d.parent
    return out


_SHARED_BEGIN = "# --- session fixtures of several test packages, one instance for all (written by tools/split_tests.py) ---"
_SHARED_END = "# --- end of the shared session fixtures ---"
_SUPPORT_IMPORT = re.compile(r"^from (tests\.support\.\w+) import ([\w, ]+?)\s*(?:#.*)?$")
_HOISTED = re.compile(r"^# from (tests\.support\.\w+), in (\S+) \(shared session fixtures\): ([\w, ]+)$")


def _share(out: Plan, final: set[str]) -> None:
    """Session fixtures of a support module that several package conftests use are imported once, by the conftest
    of the packages' nearest common folder (``tests/integration/conftest.py``, ``tests/conftest.py``).

    pytest makes one instance of a session fixture per conftest that declares it: re-exported by the unit and the
    integration conftest of a package (or by the gateway's and the escrow's web tests) it would be built twice, and
    twice at the same time where that cannot work (one sync Playwright per thread). A package conftest names what
    moved up in a comment line, so a re-run still knows which packages use the module."""
    confs: dict[str, str] = {}
    for f in sorted(final | set(out.conftests)):
        parts = Path(f).parts
        if Path(f).name == "conftest.py" and len(parts) > 3 and parts[1] in KINDS:
            confs[f] = out.conftests[f] if f in out.conftests else (ROOT / f).read_text(encoding="utf-8")
    users: dict[str, set[str]] = {}
    for conf, text in confs.items():
        for module, _names in _support_imports(text):
            users.setdefault(module, set()).add(conf)
    hoisted: dict[str, tuple[str, list[str]]] = {}  # module → (common conftest, its session fixtures)
    for module, where in sorted(users.items()):
        session = _session_fixtures(ROOT / path_of(module)) if len(where) > 1 else []
        if session:
            common = Path(_common_folder([Path(c).parent for c in where])) / "conftest.py"
            hoisted[module] = (common.as_posix(), session)
    for conf, text in confs.items():
        new = _thinned(text, hoisted)
        current = (ROOT / conf).read_text(encoding="utf-8") if (ROOT / conf).exists() else None
        if new != current:
            out.conftests[conf] = new
        else:
            out.conftests.pop(conf, None)
    tops = {c for c, _ in hoisted.values()} | {f for f in final if Path(f).name == "conftest.py" and len(Path(f).parts) <= 3
                                              and _SHARED_BEGIN in (ROOT / f).read_text(encoding="utf-8")}
    for top in sorted(tops):
        lines = [f"from {m} import {', '.join(names)}  # noqa: E402,F401 - pytest fixtures"
                 for m, (c, names) in sorted(hoisted.items()) if c == top]
        current = (ROOT / top).read_text(encoding="utf-8") if (ROOT / top).exists() else None
        base = current if current is not None else \
            '"""Fixtures shared by the test packages below this folder (tools/split_tests.py puts them here)."""\n'
        if _SHARED_BEGIN in base:
            head, rest = base.split(_SHARED_BEGIN, 1)
            base = head.rstrip("\n") + "\n" + rest.split(_SHARED_END, 1)[1].lstrip("\n")
        new = base if not lines else base.rstrip("\n") + "\n\n\n" + "\n".join([_SHARED_BEGIN, *lines, _SHARED_END]) + "\n"
        if new != current and (current is not None or lines):
            out.conftests[top] = new


def _common_folder(folders: list[Path]) -> str:
    parts = [f.parts for f in folders]
    common = []
    for level in zip(*parts):
        if len(set(level)) > 1:
            break
        common.append(level[0])
    return Path(*common).as_posix()


def _support_imports(text: str) -> list[tuple[str, list[str]]]:
    """(support module, fixture names) of a package conftest: its imports and the names it says moved up."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = _SUPPORT_IMPORT.match(line)
        h = _HOISTED.match(line)
        if m or h:
            module, names = (m.group(1), m.group(2)) if m else (h.group(1), h.group(3))
            found.setdefault(module, [])
            found[module] += [n.strip() for n in names.split(",") if n.strip() and n.strip() not in found[module]]
    return list(found.items())


def _thinned(text: str, hoisted: dict[str, tuple[str, list[str]]]) -> str:
    """``text`` with each support import naming the fixtures left here, and a comment for the ones moved up."""
    out: list[str] = []
    done = False
    for line in text.splitlines():
        if _SUPPORT_IMPORT.match(line) or _HOISTED.match(line):
            if not done:
                for module, names in _support_imports(text):
                    top, session = hoisted.get(module, ("", []))
                    here = [n for n in names if n not in session]
                    up = [n for n in names if n in session]
                    if here:
                        out.append(f"from {module} import {', '.join(sorted(here))}  # noqa: F401 - pytest fixtures")
                    if up:
                        out.append(f"# from {module}, in {top} (shared session fixtures): {', '.join(sorted(up))}")
                done = True
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def _session_fixtures(path: Path) -> list[str]:
    """The fixtures ``path`` defines with ``scope="session"``."""
    if not path.exists():
        return []
    names = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for d in node.decorator_list:
                if isinstance(d, ast.Call) and "fixture" in ast.unparse(d.func) and \
                        any(k.arg == "scope" and isinstance(k.value, ast.Constant) and k.value.value == "session" for k in d.keywords):
                    names.append(node.name)
    return sorted(names)


def _fixture_conftest(folder: str, path: Path, support: str) -> str:
    """A conftest that imports every fixture the module at ``path`` (to be ``support``) defines."""
    fixtures = sorted(n for n in read(path, support).defs if _is_fixture(path, n))
    return (f'"""Fixtures of the {folder} tests (defined in {module_of(support)})."""\n\n'
            f"from {module_of(support)} import {', '.join(fixtures)}  # noqa: F401 - pytest fixtures\n")


def _is_fixture(path: Path, name: str) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return any("fixture" in ast.unparse(d) for d in node.decorator_list)
    return False


# --- doing it -------------------------------------------------------------------


def git(*args: str) -> None:
    subprocess.run(["git", *args], cwd=ROOT, check=True)


_PARENTS = re.compile(r"(Path\(__file__\)\.resolve\(\)\.parents\[)(\d+)(\])")


def _redepth(text: str, old: str, new: str) -> str:
    """``parents[N]`` that pointed at the repository (or above) or at ``tests/`` point there again."""
    old_depth, new_depth = len(Path(old).parts), len(Path(new).parts)

    def fix(m: re.Match) -> str:
        n = int(m.group(2))
        if n >= old_depth - 1:
            n += new_depth - old_depth
        elif n == old_depth - 2:
            n = new_depth - 2
        return f"{m.group(1)}{n}{m.group(3)}"

    return _PARENTS.sub(fix, text)


_FROM = re.compile(r"^(\s*)from (tests(?:\.\w+)+) import ", re.M)
_FROM_TESTS = re.compile(r"^(\s*)from tests import (\w+)(?: as (\w+))?", re.M)
_IMPORT = re.compile(r"^(\s*)import (tests(?:\.\w+)+)", re.M)
_MENTION = re.compile(r"(?<![\w/.])tests/[\w/]+\.py\b")


def rewrite(text: str, modules: dict[str, str], paths: dict[str, str]) -> str:
    """Stale ``tests.…`` imports and ``tests/….py`` mentions in ``text``, renamed."""
    def from_(m: re.Match) -> str:
        new = resolve_module(m.group(2), modules)
        return f"{m.group(1)}from {new} import " if new else m.group(0)

    def from_tests(m: re.Match) -> str:
        new = resolve_module(f"tests.{m.group(2)}", modules)
        if not new:
            return m.group(0)
        package, name = new.rsplit(".", 1)
        alias = m.group(3) or m.group(2)
        return f"{m.group(1)}from {package} import {name}" + (f" as {alias}" if alias != name else "")

    def import_(m: re.Match) -> str:
        new = resolve_module(m.group(2), modules)
        return f"{m.group(1)}import {new}" if new else m.group(0)

    def mention(m: re.Match) -> str:
        old = m.group(0)
        if (ROOT / old).exists():
            return old
        if old in paths:
            return paths[old]
        new = resolve_module(module_of(old), modules)
        return path_of(new) if new else old

    text = _FROM.sub(from_, text)
    text = _FROM_TESTS.sub(from_tests, text)
    text = _IMPORT.sub(import_, text)
    return _MENTION.sub(mention, text)


def apply(p: Plan) -> None:
    for init in p.inits:
        (ROOT / init).parent.mkdir(parents=True, exist_ok=True)
        kind = Path(init).parts[1]
        doc = {"unit": "Unit tests: in-process, nothing started (tools/split_tests.py states the rule).",
               "integration": "Integration tests: each starts a server, a database, a browser, a process or a Dask cluster.",
               "support": "The test support package: servers, PostgreSQL, and each area's helpers and fixtures."}
        text = f'"""{doc[kind]}"""\n' if len(Path(init).parts) == 3 else ""
        (ROOT / init).write_text(text, encoding="utf-8")
        git("add", init)
    for old, new in p.moves.items():
        (ROOT / new).parent.mkdir(parents=True, exist_ok=True)
        git("mv", old, new)
        target = ROOT / new
        target.write_text(_redepth(target.read_text(encoding="utf-8"), old, new), encoding="utf-8")
    for conf, text in p.conftests.items():
        (ROOT / conf).write_text(text, encoding="utf-8")
        git("add", conf)
    for gone in p.removals:
        if (ROOT / gone).exists():
            git("rm", "-q", "-f", gone)
    for folder in sorted({Path(g).parent for g in p.removals} | {Path(o).parent for o in p.moves}, key=lambda d: -len(d.parts)):
        if not (ROOT / folder).is_dir() or any(q.suffix == ".py" for q in (ROOT / folder).iterdir()):
            continue
        for cache in (ROOT / folder).glob("__pycache__"):
            for f in cache.iterdir():
                f.unlink()
            cache.rmdir()
        if (ROOT / folder).is_dir() and not any((ROOT / folder).iterdir()):
            (ROOT / folder).rmdir()
    # Rename what refers to the old places, everywhere in the repository.
    modules = {module_of(rel(q)): module_of(rel(q)) for q in tracked_tests()}
    modules.update({module_of(o): module_of(n) for o, n in p.moves.items()})
    paths = dict(p.moves)
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()
    this = rel(Path(__file__).resolve())
    for name in listed:
        f = ROOT / name
        if name == this or not f.is_file() or not (f.suffix in TEXT_SUFFIXES or f.name == "Makefile"):
            continue
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if "tests" not in text:
            continue
        new = rewrite(text, modules, paths)
        if new != text:
            f.write_text(new, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="list pending moves and conftests; exit 1 if there are any")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    args = parser.parse_args(argv)
    p = plan()
    for old, new in sorted(p.moves.items()):
        print(f"move {old} -> {new}")
    for conf in sorted(p.conftests):
        print(f"conftest {conf}")
    for gone in p.removals:
        print(f"remove {gone}")
    if args.check:
        return 1 if p.moves or p.conftests else 0
    if not args.dry_run:
        apply(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
