"""Every test module is where the unit/integration rule puts it, under the path of a package that exists.

The rule and the classifier are ``tools/split_tests.py``'s: a module that
starts a server, a database server, a browser, a process or a Dask cluster
(itself, or through a helper or fixture it uses) is an integration test; the
rest are unit tests. Run ``python tools/split_tests.py`` to put new or changed
test modules in place.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def _splitter():
    spec = importlib.util.spec_from_file_location("split_tests", ROOT / "tools" / "split_tests.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("split_tests", module)
    spec.loader.exec_module(module)
    return module


def test_every_test_module_is_where_the_rule_puts_it() -> None:
    plan = _splitter().plan()
    pending = [f"{old} -> {new}" for old, new in sorted(plan.moves.items())] + [f"conftest {c}" for c in sorted(plan.conftests)]
    assert not pending, "run `python tools/split_tests.py`:\n" + "\n".join(pending)


def test_tests_live_only_in_unit_integration_structure_and_support() -> None:
    stray = sorted(p.relative_to(ROOT).as_posix() for p in TESTS.rglob("test_*.py")
                   if p.relative_to(TESTS).parts[0] not in ("unit", "integration", "structure"))
    assert not stray, stray


def test_each_test_folder_mirrors_a_package_of_the_code() -> None:
    folders = {p.parent.relative_to(TESTS / kind) for kind in ("unit", "integration")
               for p in (TESTS / kind).rglob("test_*.py")}
    missing = sorted(str(f) for f in folders if not (ROOT / f / "__init__.py").is_file())
    assert not missing, f"no such package in the code: {missing}"
    assert any(p.parts == ("linkage",) for p in folders) and any(p.parts == ("gateway", "web") for p in folders)


def test_the_rule_sees_a_server_through_a_helper(tmp_path: Path) -> None:
    split = _splitter()
    helper = tmp_path / "helper.py"
    helper.write_text("import subprocess\n\ndef start():\n    return subprocess.Popen(['tsunagu'])\n\n"
                      "def constant():\n    return 1\n", encoding="utf-8")
    uses_start = tmp_path / "test_a.py"
    uses_start.write_text("from helper import start\n\ndef test_a():\n    start()\n", encoding="utf-8")
    uses_constant = tmp_path / "test_b.py"
    uses_constant.write_text("from helper import constant\n\ndef test_b():\n    assert constant() == 1\n", encoding="utf-8")
    infos = {name: split.read(path, name) for name, path in
             (("helper.py", helper), ("test_a.py", uses_start), ("test_b.py", uses_constant))}
    start = split.starters(infos)
    assert start["helper"] == {"start", "subprocess"}
    assert start["test_a"] >= {"start"} and not start["test_b"]


def test_session_fixtures_used_by_several_packages_are_declared_once() -> None:
    # pytest makes one instance of a session fixture per conftest that declares it: each is imported by one conftest.
    split = _splitter()
    declared: dict[str, list[str]] = {}
    for conf in sorted(TESTS.rglob("conftest.py")):
        for line in conf.read_text(encoding="utf-8").splitlines():
            found = split._SUPPORT_IMPORT.match(line)
            if found:
                session = split._session_fixtures(ROOT / split.path_of(found.group(1)))
                for name in (n.strip() for n in found.group(2).split(",")):
                    if name in session:
                        declared.setdefault(f"{found.group(1)}.{name}", []).append(conf.relative_to(ROOT).as_posix())
    twice = {name: where for name, where in declared.items() if len(where) > 1}
    assert not twice, twice
    assert declared["tests.support.web.site"] == ["tests/integration/conftest.py"]
    assert declared["tests.support.escrow.ceremony"] == ["tests/conftest.py"]


def test_a_package_conftest_keeps_its_own_fixtures_and_names_the_shared_ones() -> None:
    split = _splitter()
    text = '"""Fixtures."""\n\nfrom tests.support.web import browser, context, site  # noqa: F401 - pytest fixtures\n'
    thinned = split._thinned(text, {"tests.support.web": ("tests/integration/conftest.py", ["browser", "site"])})
    assert "from tests.support.web import context  #" in thinned
    assert "# from tests.support.web, in tests/integration/conftest.py (shared session fixtures): browser, site" in thinned
    assert split._support_imports(thinned) == [("tests.support.web", ["context", "browser", "site"])]
    assert split._thinned(thinned, {"tests.support.web": ("tests/integration/conftest.py", ["browser", "site"])}) == thinned
