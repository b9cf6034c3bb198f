"""Front doors of the escrow, against the real server on its own home: lockout and unlock, the password rule, the
account lifecycle over the API and the CLI, bodies bounded before parsing, unauthenticated refusals counted."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.support.frontdoor import declared_too_large
from tests.support.escrow import PASSWORD, Ceremony, GatewayLog, Server, cli, start_server
from escrow.service import Escrow

GOOD = "violet kettle harbour lantern 42"


@pytest.fixture
def own_server(ceremony: Ceremony, gateway_log: GatewayLog, tmp_path: Path) -> Iterator[Server]:
    """An escrow on a home of its own (its throttle state and log are this test's alone)."""
    home = tmp_path / "escrow"
    cli(["escrow", "init", "--home", str(home), "--from-keys", str(ceremony.admin_home), "--gateway-verifier", str(gateway_log.verifier_file)])
    for username, role in (("admin", "admin"), ("tanaka", "caseworker"), ("kato", "auditor")):
        cli(["escrow", "user", "add", "--home", str(home), "--username", username, "--role", role, "--password-stdin"], input=PASSWORD + "\n")
    s = start_server(home)
    yield s
    s.stop()


def _audit(home: Path) -> list:
    escrow = Escrow.open(home)
    try:
        return list(escrow.audit.entries())
    finally:
        escrow.close()


def _login(server: Server, username: str, password: str) -> httpx.Response:
    return httpx.post(f"{server.base_url}/api/v1/auth/login", json={"username": username, "password": password}, timeout=60)


def test_120_wrong_passwords_then_the_right_one_does_not_sign_in(own_server: Server) -> None:
    admin = own_server.client("admin")
    before = len(_audit(own_server.home))
    statuses = [_login(own_server, "tanaka", f"wrong guess {n}").status_code for n in range(120)]
    assert statuses[:5] == [401] * 5 and statuses[-1] == 403
    right = _login(own_server, "tanaka", PASSWORD)
    assert right.status_code == 403 and right.json()["code"] == "account_locked" and "access_token" not in right.text
    entries = _audit(own_server.home)[before:]
    assert [(e.action, e.target) for e in entries] == [("auth.lock", "tanaka")]  # 121 refusals, one entry: the lock

    assert {"kind": "account", "key": "tanaka", "locked": True}.items() <= \
        next(e for e in admin.get("/api/v1/lockouts").json() if e["kind"] == "account").items()
    assert admin.post("/api/v1/lockouts/unlock", json={"kind": "address", "key": "127.0.0.1\u0007"}).json()["code"] == "invalid_lock_key"
    assert admin.post("/api/v1/lockouts/unlock", json={"kind": "account", "key": "tanaka"}).json()["lifted"] is True
    assert admin.post("/api/v1/lockouts/unlock", json={"kind": "address", "key": "127.0.0.1"}).json()["lifted"] is True
    assert _login(own_server, "tanaka", PASSWORD).status_code == 200
    assert [e.action for e in _audit(own_server.home)[before:]][-3:] == ["auth.unlock", "auth.unlock", "auth.login"]


def test_accounts_over_the_api(own_server: Server) -> None:
    admin = own_server.client("admin")
    for weak in ("            ", "sato.hanako1", "password1234", "11111111111111"):
        r = admin.post("/api/v1/users", json={"username": "sato.hanako", "roles": ["approver"], "password": weak})
        assert r.status_code == 422 and r.json()["code"] == "weak_password", weak
    assert admin.post("/api/v1/users", json={"username": "sato.hanako", "roles": ["approver"], "password": GOOD}).status_code == 201
    assert own_server.client("tanaka").get("/api/v1/users").json()["code"] == "forbidden_role"

    token = _login(own_server, "sato.hanako", GOOD).json()["access_token"]
    assert admin.post("/api/v1/users/sato.hanako/disable").status_code == 204
    assert httpx.get(f"{own_server.base_url}/api/v1/requests", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert admin.post("/api/v1/users/sato.hanako/enable").status_code == 204
    assert admin.put("/api/v1/users/sato.hanako/roles", json={"roles": ["approver", "caseworker"]}).status_code == 204
    temporary = admin.post("/api/v1/users/sato.hanako/reset-password").json()["temporary_password"]
    answer = _login(own_server, "sato.hanako", temporary).json()
    assert answer["must_change_password"] is True
    temp = {"Authorization": f"Bearer {answer['access_token']}"}
    assert httpx.get(f"{own_server.base_url}/api/v1/requests", headers=temp).json()["code"] == "password_change_required"
    new = "saffron glacier tortoise umbrella"
    assert httpx.post(f"{own_server.base_url}/api/v1/auth/password", headers=temp,
                      json={"current_password": temporary, "new_password": new}).status_code == 204
    assert httpx.get(f"{own_server.base_url}/api/v1/requests", headers=temp).status_code == 200
    assert admin.delete("/api/v1/users/admin").json()["code"] == "self_delete"
    assert admin.delete("/api/v1/users/sato.hanako").status_code == 204
    assert _login(own_server, "sato.hanako", new).status_code == 401
    actions = [e.action for e in _audit(own_server.home) if e.target.startswith("sato.hanako")]
    assert actions == ["user.add", "user.disable", "user.enable", "user.role", "user.reset_password", "user.change_password", "user.delete"]


def test_accounts_from_the_cli(own_server: Server) -> None:
    home = ["--home", str(own_server.home)]
    cli(["escrow", "user", "add", *home, "--username", "ito.jiro", "--role", "auditor", "--password-stdin"], input=GOOD + "\n")
    cli(["escrow", "user", "role", *home, "--username", "ito.jiro", "--role", "approver"])
    cli(["escrow", "user", "disable", *home, "--username", "ito.jiro"])
    assert "ito.jiro\tapprover\t無効" in cli(["escrow", "user", "list", *home])
    cli(["escrow", "user", "enable", *home, "--username", "ito.jiro"])
    temporary = cli(["escrow", "user", "reset-password", *home, "--username", "ito.jiro"]).strip().splitlines()[-1]
    cli(["escrow", "passwd", "--url", own_server.base_url, "--username", "ito.jiro", "--password-stdin"],
        input=f"{temporary}\nsaffron glacier tortoise umbrella\n")
    assert _login(own_server, "ito.jiro", "saffron glacier tortoise umbrella").json()["must_change_password"] is False
    assert "ロックはかかっていませんでした" in cli(["escrow", "user", "unlock", *home, "--username", "ito.jiro"])
    cli(["escrow", "user", "delete", *home, "--username", "ito.jiro", "--yes"])
    actions = [(e.actor, e.action) for e in _audit(own_server.home) if e.target.startswith("ito.jiro") or e.target == "account:ito.jiro"]
    assert actions == [("cli", "user.add"), ("cli", "user.role"), ("cli", "user.disable"), ("cli", "user.enable"),
                       ("cli", "user.reset_password"), ("ito.jiro", "user.change_password"), ("cli", "auth.unlock"), ("cli", "user.delete")]


def test_bad_unauthenticated_input_is_a_4xx_and_counted_not_signed(own_server: Server) -> None:
    before = len(_audit(own_server.home))
    with httpx.Client(base_url=own_server.base_url, timeout=60) as c:
        r = c.post("/api/v1/auth/login", content=b"[" * 100_000, headers={"Content-Type": "application/json"})
        assert (r.status_code, r.json()["code"]) == (400, "json_too_deep")
        assert declared_too_large(own_server.base_url, "/api/v1/requests", 40 << 20).startswith(b"HTTP/1.1 413")
        for n in range(100):
            assert c.get("/api/v1/requests", headers={"Authorization": f"Bearer forged-{n}"}).status_code == 401
            assert c.post("/api/v1/auth/login", json={"username": f"nobody{n}", "password": "x"}).status_code in (401, 429)
    assert len(_audit(own_server.home)) == before  # nothing signed for anonymous noise …
    own_server.stop()
    summary = [e for e in _audit(own_server.home)[before:] if e.action == "refusals.summary"]
    assert len(summary) == 1 and "reidentify.list:invalid_token=100" in summary[0].outcome  # … until one summary at shutdown
