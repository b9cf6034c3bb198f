"""With the municipality's policy installed, the escrow itself decides a purpose's approvals and record limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.escrow import PASSWORD, Ceremony, GatewayLog, cli, filing, resigned, start_server

POLICY = Path(__file__).resolve().parents[3] / "policy" / "default_policy.toml"


@pytest.fixture
def policy_server(ceremony: Ceremony, gateway_log: GatewayLog, tmp_path: Path):
    home = tmp_path / "escrow"
    out = cli(["escrow", "init", "--home", str(home), "--from-keys", str(ceremony.admin_home),
               "--gateway-verifier", str(gateway_log.verifier_file), "--policy", str(POLICY)])
    assert "ポリシーを" in out
    cli(["escrow", "user", "add", "--home", str(home), "--username", "tanaka", "--role", "caseworker", "--password-stdin"],
        input=PASSWORD + "\n")
    server = start_server(home)
    yield server
    server.stop()


def test_a_filing_that_lowers_the_policys_limits_is_refused(policy_server, ceremony, gateway_log):
    tanaka = policy_server.client("tanaka")
    # child_protection needs 2 approvals and opens at most 5 records under the default policy.
    fewer = tanaka.post("/api/v1/requests", json=filing(ceremony, gateway_log, "reid-pol-1", ["tok-a"], approvals_required=1))
    assert fewer.status_code == 422 and fewer.json()["code"] == "policy_mismatch" and "承認が 2 件必要" in fewer.json()["detail"]
    wider = tanaka.post("/api/v1/requests", json=filing(ceremony, gateway_log, "reid-pol-2", ["tok-a"], max_records=6))
    assert wider.status_code == 422 and "5 件まで" in wider.json()["detail"]
    body = filing(ceremony, gateway_log, "reid-pol-3", ["tok-a"])
    body["manifest"]["purpose"] = "curiosity"
    unknown = tanaka.post("/api/v1/requests", json=resigned(gateway_log, body))
    assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_purpose"
    backed = tanaka.post("/api/v1/requests", json=filing(ceremony, gateway_log, "reid-pol-4", ["tok-a"], approvals_required=2))
    assert backed.status_code == 201


def test_a_policy_that_does_not_load_is_refused_at_init(ceremony, gateway_log, tmp_path):
    bad = tmp_path / "policy.toml"
    bad.write_text("version = [", encoding="utf-8")
    with pytest.raises(AssertionError, match="ポリシー"):
        cli(["escrow", "init", "--home", str(tmp_path / "escrow"), "--from-keys", str(ceremony.admin_home),
             "--gateway-verifier", str(gateway_log.verifier_file), "--policy", str(bad)])
