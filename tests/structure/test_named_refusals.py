"""Every refusal is raised as its named class: no ``GatewayError(status, code, detail)`` left in the product code.

A refusal's status and code are declared once, on its class in
``gateway/errors.py`` or ``escrow/errors.py`` (``service/errors.py``); a
three-argument call of ``GatewayError``, ``EscrowError`` or ``Refusal``
would declare them again at the call site, where they drift. So would any
call handed a status and a code side by side (``self.error(422, "weak_password", …)``),
and a web page that shows a form again with a status and a message written
at the call site (``_page(request, …, 422, error="…")``) instead of a named
refusal's ``status`` and ``detail``, or that tells refusals apart by their
code string instead of their class. This reads the source (``ast``) of every
product module and imports nothing.
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


def _status_literal(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, int) and 400 <= node.value < 600


def _status_and_code_calls(path: Path) -> list[int]:
    """Lines of ``path`` with a call handed a status and a code side by side (``x.error(422, "code", …)``, ``f(e.status, e.code, …)``)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Call) and len(node.args) >= 3:
            status, code = node.args[0], node.args[1]
            is_status = _status_literal(status) or (isinstance(status, ast.Attribute) and status.attr == "status")
            is_code = (isinstance(code, ast.Constant) and isinstance(code.value, str)) or (isinstance(code, ast.Attribute) and code.attr == "code")
            if is_status and is_code:
                lines.append(node.lineno)
    return lines


def _unnamed_form_refusals(path: Path) -> list[int]:
    """Lines of a web route module that answer a form with a status or a message of no named refusal.

    * a call given ``error=``/``errors=`` and a literal 4xx/5xx status (positional or ``status=``);
    * ``errors[…] = "…"`` in a POST handler: a message written into the form's errors at the call site;
    * ``exc.code == "…"`` or ``exc.code.startswith(…)``: refusals told apart by code, not by class.
    """
    lines = []
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            keywords = {k.arg: k.value for k in node.keywords}
            if {"error", "errors"} & set(keywords) and (any(_status_literal(a) for a in node.args)
                                                         or _status_literal(keywords.get("status", ast.Constant(None)))):
                lines.append(node.lineno)
            func = node.func
            if (isinstance(func, ast.Attribute) and func.attr == "startswith" and isinstance(func.value, ast.Attribute)
                    and func.value.attr == "code"):
                lines.append(node.lineno)
        elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) and node.left.attr == "code":
            if any(isinstance(c, ast.Constant) and isinstance(c.value, str) for c in node.comparators):
                lines.append(node.lineno)
    for function in ast.walk(tree):
        # Inside a form's handler (POST), a message written into the form's errors is a refusal of no class.
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
                isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "post" for d in function.decorator_list):
            for node in ast.walk(function):
                if isinstance(node, ast.Assign) and isinstance(node.value, (ast.Constant, ast.JoinedStr)) and any(
                        isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name) and t.value.id == "errors" for t in node.targets):
                    lines.append(node.lineno)
    return sorted(set(lines))


def _web_modules() -> list[Path]:
    return sorted(p for package in ("gateway/web", "escrow/web", "service/web") for p in (ROOT / package).rglob("*.py"))


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_no_refusal_is_raised_with_its_status_and_code_at_the_call_site() -> None:
    found = [f"{path.relative_to(ROOT).as_posix()}:{line}" for path in _modules()
             if path.relative_to(ROOT).as_posix() not in EXEMPT for line in _three_argument_calls(path)]
    assert found == [], "raise the named class from gateway/errors.py or escrow/errors.py instead: " + ", ".join(found)


#: Modules whose calls hand a status and a code side by side on purpose: the front door answers before any service
#: code runs, and each service turns its answer into its own relayed class (BodyRefused, the shared ThrottleRefused).
FRONT_DOOR = {
    "service/frontdoor/limits.py": "the body limits' answers (400/413), relayed by each service's BodyRefused",
    "service/frontdoor/throttle.py": "the throttle's LoginRefused (429/403), relayed as the shared ThrottleRefused",
}


def test_no_call_is_handed_a_status_and_a_code() -> None:
    found = [f"{path.relative_to(ROOT).as_posix()}:{line}" for path in _modules()
             if path.relative_to(ROOT).as_posix() not in FRONT_DOOR for line in _status_and_code_calls(path)]
    assert found == [], "raise a named refusal (service/errors.py, gateway/errors.py, escrow/errors.py) instead: " + ", ".join(found)


def test_web_forms_are_answered_with_named_refusals() -> None:
    found = [f"{path.relative_to(ROOT).as_posix()}:{line}" for path in _web_modules() for line in _unnamed_form_refusals(path)]
    assert found == [], "build the named refusal and show its status and detail instead: " + ", ".join(found)


def test_the_checks_see_a_status_and_code_call_and_an_unnamed_form_refusal(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('raise self.error(422, "weak_password", "x")\nraise self.error(exc.status, exc.code, exc.detail)\n'
                      'raise self._refusal(PasswordTooWeak)("x")\n', encoding="utf-8")
    assert _status_and_code_calls(sample) == [1, 2]
    sample.write_text('_page(request, gw, session, 422, errors={"a": "x"})\n'
                      '_page(request, gw, session, status=422, error="x")\n'
                      '@router.post("/x")\ndef post_x():\n    errors["a"] = "x"\n'
                      'if exc.code == "wrong_password":\n    pass\n'
                      'k = exc.code.startswith("reason")\n'
                      'refused = PersonIdMissing("x")\n'
                      '_page(request, gw, session, refused.status, errors={"a": refused.detail})\n'
                      'return Response(status_code=404)\n'
                      '@router.get("/y")\ndef get_y():\n    errors["q"] = "a search hint, not a refusal"\n', encoding="utf-8")
    assert _unnamed_form_refusals(sample) == [1, 2, 5, 6, 8]


def test_the_account_refusals_are_declared_once_and_caught_as_the_services_own() -> None:
    import escrow.errors
    import gateway.errors
    import service.errors as shared

    named = [c for c in vars(shared).values() if isinstance(c, type) and issubclass(c, shared.AccountRefusal)
             and c not in (shared.AccountRefusal, shared.ThrottleRefused)]
    assert len(named) >= 15 and all("status" in vars(c) and "code" in vars(c) for c in named)
    for module, base in ((gateway.errors, gateway.errors.GatewayError), (escrow.errors, escrow.errors.EscrowError)):
        theirs = {(c.status, c.code) for c in vars(module).values() if isinstance(c, type) and issubclass(c, base)
                  and "code" in vars(c)}
        assert not theirs & {(c.status, c.code) for c in named}, "an account refusal declared again by a service"
        refused = shared.of_service(shared.UserExists, base)("利用者「a」はすでにいます。")
        assert isinstance(refused, base) and isinstance(refused, shared.UserExists)
        assert (refused.status, refused.code) == (409, "user_exists")
        assert shared.of_service(shared.UserExists, base) is type(refused)


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

    # BodyRefused and PageRefused answer as the throttle, the front door or the web session decided.
    relayed = {"BodyRefused", "PageRefused"}
    for module, base in ((gateway.errors, gateway.errors.GatewayError), (escrow.errors, escrow.errors.EscrowError)):
        named = [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, base) and c is not base
                 and c.__name__ not in relayed and c.__module__ == module.__name__]
        assert len(named) > 20
        assert all("status" in vars(c) and "code" in vars(c) for c in named), [c.__name__ for c in named if "code" not in vars(c)]
        pairs = [(c.status, c.code) for c in named]
        assert len(set(pairs)) == len(pairs), "two classes for one refusal"
    refused = gateway.errors.SourceOwned("データ元はすでに別のエージェントの担当です。")
    assert (refused.status, refused.code, refused.detail) == (409, "source_owned", "データ元はすでに別のエージェントの担当です。")
