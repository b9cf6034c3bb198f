"""The whole ceremony through the installed `tsunagu` command, passphrases on stdin."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from keys.keyring import Keyring

REPO = Path(__file__).resolve().parents[3]
TSUNAGU = REPO / ".venv" / "bin" / "tsunagu"
KDF = ["--kdf-memory-kib", "1024"]  # small but real Argon2id; production keeps 65536
OPERATOR = "operator-passphrase-1"
CUSTODIAN_PASS = [f"custodian-pass-{i}-xyz" for i in range(1, 4)]


def run(*args: str, stdin: str = "", home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TSUNAGU_HOME"}
    if home is not None:
        env["TSUNAGU_HOME"] = str(home)
    return subprocess.run([str(TSUNAGU), *args], input=stdin, capture_output=True, text=True, env=env, timeout=120)


def lines(*values: str) -> str:
    return "".join(v + "\n" for v in values)


def test_ceremony_through_cli(tmp_path: Path) -> None:
    admin, agent = tmp_path / "admin", tmp_path / "agent"
    r = run("keys", "init", "--home", str(admin), "--municipality", "131016", "--custodian", "佐藤",
            "--custodian", "鈴木", "--custodian", "高橋", "--threshold", "2", "--passphrase-stdin", *KDF,
            stdin=lines(OPERATOR, *CUSTODIAN_PASS))
    assert r.returncode == 0, r.stderr
    shares = sorted((admin / "shares").glob("*/custodian-*.json"))
    assert len(shares) == 3 and all(p.stat().st_mode & 0o777 == 0o600 for p in shares)

    r = run("keys", "agent-init", "--agent-id", "edu-1", "--passphrase-stdin", *KDF, stdin=lines("agent-passphrase-1"), home=agent)
    assert r.returncode == 0, r.stderr
    r = run("keys", "enrol", "--home", str(admin), "--agent-public", str(agent / "keys" / "agent-public.json"),
            "--passphrase-stdin", "--actor", "tanaka", stdin=lines(OPERATOR))
    assert r.returncode == 0, r.stderr
    wrapped = next((admin / "enrolments").glob("edu-1-*.json"))
    r = run("keys", "agent-install", "--home", str(agent), "--wrapped", str(wrapped), "--passphrase-stdin", *KDF,
            stdin=lines("agent-passphrase-1"))
    assert r.returncode == 0, r.stderr

    # Releasing an identity is the escrow's job, after approvals (`tsunagu casework release`); the key
    # administrator has no command that opens a sealed record with custodians' shares.
    r = run("keys", "open-record", "--home", str(admin), "--share", str(shares[0]), "--passphrase-stdin",
            stdin=lines(OPERATOR, CUSTODIAN_PASS[0]))
    assert r.returncode == 2 and "open-record" in r.stderr and r.stdout == ""

    # Refusals of the custodians' shares: a wrong passphrase, too few shares; each a Japanese line, no traceback.
    rewrap = ["keys", "rewrap-escrow", "--home", str(admin), "--custodian", "伊藤", "--custodian", "渡辺", "--threshold", "2",
              "--passphrase-stdin", *KDF]
    r = run(*rewrap, "--share", str(shares[0]), "--share", str(shares[1]), stdin=lines(OPERATOR, CUSTODIAN_PASS[0], "not-the-passphrase"))
    assert r.returncode == 2 and "パスフレーズが違います" in r.stderr and "Traceback" not in r.stderr
    assert "not-the-passphrase" not in r.stderr + r.stdout
    r = run(*rewrap, "--share", str(shares[0]), stdin=lines(OPERATOR, CUSTODIAN_PASS[0]))
    assert r.returncode == 2 and "持分が足りません" in r.stderr
    r = run("keys", "revoke-agent", "--home", str(admin), "--agent-id", "edu-1", "--reason", "端末紛失",
            "--passphrase-stdin", stdin=lines(OPERATOR))
    assert r.returncode == 0, r.stderr
    r = run("keys", "enrol", "--home", str(admin), "--agent-public", str(agent / "keys" / "agent-public.json"),
            "--passphrase-stdin", stdin=lines(OPERATOR))
    assert r.returncode == 2 and "失効" in r.stderr

    r = run("keys", "rotate-linkage", "--home", str(admin), "--passphrase-stdin", *KDF, stdin=lines(OPERATOR))
    assert r.returncode == 0, r.stderr
    r = run("keys", "rewrap-escrow", "--home", str(admin), "--share", str(shares[0]), "--share", str(shares[1]),
            "--custodian", "伊藤", "--custodian", "渡辺", "--threshold", "2", "--passphrase-stdin", *KDF,
            stdin=lines(OPERATOR, CUSTODIAN_PASS[0], CUSTODIAN_PASS[1], "new-custodian-pass-a", "new-custodian-pass-b"))
    assert r.returncode == 0, r.stderr
    r = run(*rewrap, "--share", str(shares[0]), "--share", str(shares[1]),
            stdin=lines(OPERATOR, CUSTODIAN_PASS[0], CUSTODIAN_PASS[1]))
    assert r.returncode == 2 and "以前の" in r.stderr

    # The audit log of all this: export, verify, tamper, verify fails at the right place.
    export = tmp_path / "audit.jsonl"
    r = run("audit", "export", "--home", str(admin), "--out", str(export))
    assert r.returncode == 0, r.stderr
    vkey_file = tmp_path / "vkey.txt"
    vkey_file.write_text(Keyring(admin).checkpoint_vkey)
    # No trust on first use: the verifier names the trusted log key and the witnesses' keys.
    r = run("audit", "verify", str(export))
    assert r.returncode == 2 and "--public-key" in r.stderr and "信頼できません" in r.stderr
    r = run("audit", "verify", str(export), "--public-key", str(vkey_file))
    assert r.returncode == 2 and "--witness-key" in r.stderr
    # The key administrator's log has no service to push from: the auditor's own witness cosigns the export.
    witness_home = tmp_path / "auditor"
    r = run("audit", "witness", "init", "--home", str(witness_home), "--name", "kansa.example/witness")
    assert r.returncode == 0, r.stderr
    r = run("audit", "witness", "trust", "--home", str(witness_home), "--origin", "tsunagu/131016/audit-log", "--log-key", str(vkey_file))
    assert r.returncode == 0, r.stderr
    witness_key = witness_home / "witness" / "witness-verifier.txt"
    r = run("audit", "verify", str(export), "--public-key", str(vkey_file), "--witness-key", str(witness_key))
    assert r.returncode == 1 and "連署" in r.stderr
    r = run("audit", "witness", "cosign", "--home", str(witness_home), str(export))
    assert r.returncode == 0, r.stderr
    saved = tmp_path / "checkpoint.txt"
    r = run("audit", "verify", str(export), "--public-key", str(vkey_file), "--witness-key", str(witness_key),
            "--save-checkpoint", str(saved))
    assert r.returncode == 0, r.stderr
    assert "kansa.example/witness" in r.stdout
    entries = [json.loads(l) for l in export.read_text().splitlines() if json.loads(l)["type"] == "entry"]
    assert [e["entry"]["action"] for e in entries] == [
        "keys.init", "agent.enrol", "agent.revoke", "linkage.rotate", "escrow.rewrap"]

    text = export.read_text().splitlines()
    assert "edu-1" in text[3]
    text[3] = text[3].replace("edu-1", "edu-9")  # entry 2: the agent the revocation names
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join(text) + "\n")
    r = run("audit", "verify", str(tampered), "--public-key", str(vkey_file), "--witness-key", str(witness_key))
    assert r.returncode == 1 and "位置 2" in r.stderr

    # A later log is consistent with the saved checkpoint.
    r = run("keys", "revoke-agent", "--home", str(admin), "--agent-id", "edu-1", "--reason", "x", "--passphrase-stdin",
            stdin=lines(OPERATOR))
    assert r.returncode == 2 and "すでに失効" in r.stderr
    r = run("audit", "verify", str(export), "--previous-checkpoint", str(saved), "--public-key", str(vkey_file),
            "--witness-key", str(witness_key))
    assert r.returncode == 0 and "先頭部分" in r.stdout


def test_truncated_key_file_is_refused(tmp_path: Path) -> None:
    admin = tmp_path / "admin"
    r = run("keys", "init", "--home", str(admin), "--municipality", "131016", "--custodian", "a", "--custodian", "b",
            "--threshold", "2", "--passphrase-stdin", *KDF, stdin=lines(OPERATOR, "custodian-a-pass", "custodian-b-pass"))
    assert r.returncode == 0, r.stderr
    keyring = admin / "keys" / "keyring.json"
    keyring.write_bytes(keyring.read_bytes()[:50])
    r = run("keys", "rotate-linkage", "--home", str(admin), "--passphrase-stdin", *KDF, stdin=lines(OPERATOR))
    assert r.returncode == 2 and "途中で切れている" in r.stderr and "Traceback" not in r.stderr
