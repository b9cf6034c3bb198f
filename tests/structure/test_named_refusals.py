"""Every refusal is raised as its named class: no ``GatewayError(status, code, detail)`` left in the product code.

A refusal's status and code are declared once, on its class in
``gateway/errors.py`` or ``escrow/errors.py`` (``service/errors.py``); a
three-argument call of ``GatewayError``, ``EscrowError`` or ``Refusal``
would declare them again at the call site, where they drift. This reads the
source (``ast``) of every product module and imports nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "escrow", "service", "tsunagu", "agents", "keys", "linkage", "policy")
BASES = {"GatewayError", "EscrowError", "Refusal"}
#: Modules allowed a three-argument refusal call, each with the issue that removes it (none left).
EXEMPT: dict[str, str] = {}


def _three_argument_calls(path: Path) -> list[int]:
    """Lines of ``path`` that call a refusal base class with status, code and detail."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and len(node.args) + len(node.keywords) >= 3:
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name in BASES:
                lines.append(node.lineno)
    return lines


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_no_refusal_is_raised_with_its_status_and_code_at_the_call_site() -> None:
    found = [f"{path.relative_to(ROOT).as_posix()}:{line}" for path in _modules()
             if path.relative_to(ROOT).as_posix() not in EXEMPT for line in _three_argument_calls(path)]
    assert found == [], "raise the named class from gateway/errors.py or escrow/errors.py instead: " + ", ".join(found)


def test_the_check_sees_a_three_argument_call(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('from gateway.errors import GatewayError\n\nraise GatewayError(409, "source_owned", "x")\n', encoding="utf-8")
    assert _three_argument_calls(sample) == [3]
    sample.write_text('from gateway.errors import SourceOwned\n\nraise SourceOwned("x")\n', encoding="utf-8")
    assert _three_argument_calls(sample) == []


def test_every_exemption_still_names_a_module_with_such_a_call() -> None:
    stale = [name for name in EXEMPT if not (ROOT / name).exists() or not _three_argument_calls(ROOT / name)]
    assert stale == [], f"remove these from EXEMPT (#11): {stale}"


def test_each_named_refusal_declares_its_own_status_and_code_once() -> None:
    import escrow.errors
    import gateway.errors

    # LoginThrottled, BodyRefused and PageRefused answer as the throttle, the front door or the web session decided.
    relayed = {"LoginThrottled", "BodyRefused", "PageRefused"}
    for module, base in ((gateway.errors, gateway.errors.GatewayError), (escrow.errors, escrow.errors.EscrowError)):
        named = [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, base) and c is not base
                 and c.__name__ not in relayed and c.__module__ == module.__name__]
        assert len(named) > 20
        assert all("status" in vars(c) and "code" in vars(c) for c in named), [c.__name__ for c in named if "code" not in vars(c)]
        pairs = [(c.status, c.code) for c in named]
        assert len(set(pairs)) == len(pairs), "two classes for one refusal"
    refused = gateway.errors.SourceOwned("データ元はすでに別のエージェントの担当です。")
    assert (refused.status, refused.code, refused.detail) == (409, "source_owned", "データ元はすでに別のエージェントの担当です。")
