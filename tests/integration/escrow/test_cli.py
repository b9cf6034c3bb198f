"""`tsunagu escrow init | user add | unseal | status | seal`, `tsunagu casework release`, and the escrow's audit export checked by `tsunagu audit verify`."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.support.escrow import CUSTODIANS, IDENTITIES, PASSWORD, Ceremony, GatewayLog, Server, cli, filing
from typer.testing import CliRunner

from tsunagu.cli import app


def _fails(args: list[str], input: str | None = None) -> str:
    """Run a command that must fail; its output and its error (what `tsunagu` prints as エラー: …)."""
    result = CliRunner().invoke(app, args, input=input)
    assert result.exit_code != 0, result.output
    return f"{result.output}{result.exception}"


def test_init_copies_the_sealed_key_only(ceremony: Ceremony, gateway_log: GatewayLog, tmp_path: Path) -> None:
    home = tmp_path / "escrow"
    out = cli(["escrow", "init", "--home", str(home), "--from-keys", str(ceremony.admin_home),
               "--gateway-verifier", str(gateway_log.verifier_file)])
    assert "開封に 3/5 人の鍵管理者が必要" in out and "エスクローの監査ログの検証鍵: tsunagu-escrow+" in out
    names = {p.name for p in home.iterdir()}
    assert {"escrow.toml", "escrow-private.json", "gateway-verifier.txt", "audit-signing.pem", "audit-verifier.txt"} <= names
    assert not [n for n in names if "custodian" in n or n == "shares"]
    assert (home / "escrow-private.json").read_bytes() == (ceremony.admin_home / "keys" / "escrow-private.json").read_bytes()
    assert stat.S_IMODE((home / "audit-signing.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "escrow-private.json").stat().st_mode) == 0o600

    assert "既にエスクローがあります" in _fails(["escrow", "init", "--home", str(home), "--from-keys", str(ceremony.admin_home),
                                                 "--gateway-verifier", str(gateway_log.verifier_file)])
    bad = tmp_path / "bad-verifier.txt"
    bad.write_text("not a key\n", encoding="utf-8")
    assert "検証鍵の形式が違います" in _fails(["escrow", "init", "--home", str(tmp_path / "e2"), "--from-keys",
                                              str(ceremony.admin_home), "--gateway-verifier", str(bad)])
    add = ["escrow", "user", "add", "--home", str(home), "--username", "u1", "--password-stdin"]
    assert "12 文字以上" in _fails([*add, "--role", "approver"], input="short\n")
    assert "ロール「auditer」はありません" in _fails([*add, "--role", "auditer"], input=PASSWORD + "\n")


def test_unseal_command_shows_progress(server: Server, ceremony: Ceremony) -> None:
    def unseal(number: int, pick: int, passphrase: str | None = None) -> tuple[int, str]:
        secret = CUSTODIANS[pick].passphrase if passphrase is None else passphrase
        result = CliRunner().invoke(app, ["escrow", "unseal", "--url", server.base_url, "--share", str(ceremony.share_files[pick]),
                                          "--username", f"custodian{number}", "--passphrase-stdin"],
                                    input=f"{PASSWORD}\n{secret}\n")
        return result.exit_code, f"{result.output}{result.exception or ''}"

    assert "封印されています（開封には 3 人の鍵管理者が必要です）" in cli(["escrow", "status", "--url", server.base_url])
    assert unseal(1, 0) == (0, "1/3 人の鍵管理者が開封しました。あと 2 人の鍵管理者の開封が必要です。\n")
    code, out = unseal(2, 1, "wrong passphrase")
    assert code != 0 and "パスフレーズが違います" in out
    assert "2/3 人の鍵管理者が開封しました" in unseal(2, 1)[1]
    assert "エスクローは開封されています（3/5 人の鍵管理者が開封しました）" in unseal(3, 2)[1]
    out = cli(["escrow", "seal", "--url", server.base_url, "--username", "admin", "--password-stdin"], input=PASSWORD + "\n")
    assert "封印されています" in out

    written = b"".join(p.read_bytes() for p in server.home.iterdir() if p.is_file())
    for secret in [PASSWORD, "wrong passphrase", *(c.passphrase for c in CUSTODIANS)]:
        assert secret.encode("utf-8") not in written


def test_audit_export_verifies_with_tsunagu_audit_verify(server: Server, tmp_path: Path) -> None:
    server.client("custodian1").post("/api/v1/unseal", json={"share": "{}", "passphrase": "x"})  # a refusal to log
    r = server.client("kato").get("/api/v1/audit/export")
    assert r.status_code == 200
    assert server.client("tanaka").get("/api/v1/audit/export").status_code == 403
    export = tmp_path / "escrow-audit.jsonl"
    export.write_text(r.text, encoding="utf-8")
    # An auditor's own witness cosigns the export offline (this escrow has no witness configured).
    auditor = tmp_path / "auditor"
    cli(["audit", "witness", "init", "--home", str(auditor), "--name", "kansa.example/witness"])
    cli(["audit", "witness", "trust", "--home", str(auditor), "--origin", "tsunagu.escrow/131016",
         "--log-key", str(server.home / "audit-verifier.txt")])
    cli(["audit", "witness", "cosign", "--home", str(auditor), str(export)])
    witness_key = str(auditor / "witness" / "witness-verifier.txt")
    out = cli(["audit", "verify", str(export), "--public-key", str(server.home / "audit-verifier.txt"), "--witness-key", witness_key])
    assert "検証成功" in out

    lines = export.read_text(encoding="utf-8").split("\n")[:-1]
    refused = next(i for i, line in enumerate(lines) if '"refused: share_refused' in line)
    item = json.loads(lines[refused])
    item["entry"]["outcome"] = "share accepted 1/3"  # someone hides a refusal
    lines[refused] = json.dumps(item, ensure_ascii=False)
    export.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["audit", "verify", str(export), "--public-key", str(server.home / "audit-verifier.txt"),
                                      "--witness-key", witness_key])
    assert result.exit_code == 1 and f"位置 {item['index']}" in result.output


def test_release_command_prints_the_identities_once(server: Server, ceremony: Ceremony, gateway_log: GatewayLog) -> None:
    assert server.client("tanaka").post("/api/v1/requests", json=filing(
        ceremony, gateway_log, "reid-cli-1", ["tok-a", "tok-c"], approvals_required=1)).status_code == 201
    assert server.client("sato").post("/api/v1/requests/reid-cli-1/approve").status_code == 200
    server.unseal(ceremony)
    release = ["casework", "release", "--escrow", server.base_url, "--request", "reid-cli-1", "--username", "tanaka", "--password-stdin"]
    out = cli(release, input=PASSWORD + "\n")
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [(r["token"], r["identity"]) for r in records] == [("tok-a", IDENTITIES["tok-a"]), ("tok-c", IDENTITIES["tok-c"])]
    assert "既に開示済みです" in _fails(release, input=PASSWORD + "\n")
