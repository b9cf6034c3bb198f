"""The gateway and the escrow witness each other over HTTP, an auditor runs a witness of their own, and an auditor verifies.

Real servers on loopback (`tsunagu gateway serve`, `tsunagu escrow serve`,
`tsunagu audit witness serve`), set up through the CLI. Entries whose text
holds U+2028, U+2029 and U+0085 verify from the CLI, the gateway's web UI
and in the escrow's export. Then the gateway's operator rewrites the
gateway's history and re-signs it with the gateway's own key: both
witnesses refuse to cosign, and the auditor, who kept no checkpoint, sees it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from sqlalchemy import delete, update
from typer.testing import CliRunner

from escrow.service import Escrow as EscrowService
from gateway.core import Gateway
from gateway.web.session import COOKIE, CSRF_FIELD, csrf_token
from tests.support import server as _server
from tests.support.gateway import PASSWORD, TSUNAGU, Home, Server, cli, start_server, stop_server
from keys.audit import AuditEntry
from keys.custody import Custodian
from keys.keyring import init_municipality
from keys.passphrase import KdfParams
from service import audit_store
from tsunagu.cli import app

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
FAST = KdfParams(memory_kib=1024, iterations=1, lanes=1)
ODD = "\u2028\u2029\u0085"


class Process:
    """A `tsunagu …` server subprocess on a free loopback port, waited for until ``probe`` answers."""

    def __init__(self, args: list[str], probe: str, log: Path, method: str = "get") -> None:
        self.port = _server.free_port()
        self.process, self.url = _server.start([TSUNAGU, *args], probe, log, os.environ.copy(), port=self.port,
                                               method=method, status=None)

    def stop(self) -> None:
        _server.stop(self.process)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed command, as an auditor runs it."""
    return subprocess.run([TSUNAGU, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def deployment(tmp_path: Path, database_url: str | None, agents) -> Iterator[tuple[Server, Process, Process, Path]]:
    admin = tmp_path / "admin"
    init_municipality(admin, "000000", [Custodian(f"c{i}", f"custodian pass {i}") for i in range(2)], 2, "operator pass 1", FAST)
    home = Home(tmp_path / "gateway", {}, agents)
    key_id = next(iter(agents.values())).linkage.key_id
    cli(["gateway", "init", "--home", str(home.path), "--linkage-key-id", key_id])
    home.cli("user", "add", "--username", "kato", "--role", "auditor", "--password-stdin", input=PASSWORD + "\n")
    gw = Gateway.open(home.path)
    (tmp_path / "gateway.vkey").write_text(gw.signer.verifier.vkey() + "\n")
    gw.close()
    escrow_home = tmp_path / "escrow"
    cli(["escrow", "init", "--home", str(escrow_home), "--from-keys", str(admin), "--gateway-verifier", str(tmp_path / "gateway.vkey")])
    cli(["escrow", "user", "add", "--home", str(escrow_home), "--username", "kato", "--role", "auditor", "--password-stdin"],
        input=PASSWORD + "\n")
    # The gateway witnesses the escrow's log.
    cli(["audit", "witness", "trust", "--home", str(home.path), "--origin", "tsunagu.escrow/000000",
         "--log-key", str(escrow_home / "audit-verifier.txt")])
    # The auditor's own witness, of the gateway's log.
    auditor = tmp_path / "auditor"
    cli(["audit", "witness", "init", "--home", str(auditor), "--name", "kansa.example/witness"])
    cli(["audit", "witness", "trust", "--home", str(auditor), "--origin", "tsunagu.gateway/000000", "--log-key", str(tmp_path / "gateway.vkey")])

    gateway = start_server(home, {"TSUNAGU_WITNESS_INTERVAL_SECONDS": "0"})
    escrow = Process(["escrow", "serve", "--home", str(escrow_home)], "/api/v1/status", tmp_path / "escrow.out")
    witness = Process(["audit", "witness", "serve", "--home", str(auditor)], "/witness/latest?origin=x", tmp_path / "witness.out")
    try:
        cli(["audit", "witness", "use", "--home", str(home.path), "--url", f"{escrow.url}/api/v1/witness",
             "--witness-key", str(escrow_home / "witness" / "witness-verifier.txt")])
        cli(["audit", "witness", "use", "--home", str(home.path), "--url", f"{witness.url}/witness",
             "--witness-key", str(auditor / "witness" / "witness-verifier.txt")])
        cli(["audit", "witness", "use", "--home", str(escrow_home), "--url", f"{gateway.base_url}/api/v1/witness",
             "--witness-key", str(home.path / "witness" / "witness-verifier.txt")])
        yield gateway, escrow, witness, tmp_path
    finally:
        witness.stop()
        escrow.stop()
        stop_server(gateway)


def _login(url: str) -> str:
    r = httpx.post(f"{url}/api/v1/auth/login", json={"username": "kato", "password": PASSWORD}, timeout=300)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


@SQLITE
def test_mutual_witnessing_and_an_auditor_who_kept_nothing(deployment) -> None:
    gateway, escrow, witness, tmp = deployment
    gw_home, escrow_home, auditor = gateway.home.path, tmp / "escrow", tmp / "auditor"
    gw_witness, escrow_witness, own_witness = (p / "witness" / "witness-verifier.txt" for p in (gw_home, escrow_home, auditor))

    # Entries whose text holds every line separator str.splitlines() knows outside C0 (C0 controls are refused by AuditEntry).
    gw = Gateway.open(gw_home)
    for ch in ODD:
        gw.record(f"staff{ch}1", "caseworker", "person.view", f"viewed{ch}", target=f"p_{ord(ch):04x}{ch}")
    early_note = gw.audit.latest_checkpoint()
    gw.close()
    esc = EscrowService.open(escrow_home)
    for ch in ODD:
        esc.record(f"clerk{ch}", "caseworker", "reidentify.request", f"filed{ch}", target=f"reid-{ord(ch):x}", purpose=f"支援{ch}")
    esc.close()

    # The auditor fetches both exports; each service first asks its witnesses to cosign.
    token = _login(gateway.base_url)
    gateway_export = httpx.get(f"{gateway.base_url}/api/v1/audit/export", headers={"Authorization": f"Bearer {token}"}, timeout=300).text
    escrow_export = httpx.get(f"{escrow.url}/api/v1/audit/export", headers={"Authorization": f"Bearer {_login(escrow.url)}"},
                              timeout=300).text
    # One entry per line, whatever the text: the separators travel escaped, so even splitlines() cannot break a line.
    for export in (gateway_export, escrow_export):
        assert all(ch not in export for ch in ODD) and "\\u2028" in export and "\\u0085" in export
        assert len(export.splitlines()) == len(export.split("\n")) - 1
    (tmp / "g.jsonl").write_text(gateway_export, encoding="utf-8")
    (tmp / "e.jsonl").write_text(escrow_export, encoding="utf-8")

    r = run("audit", "verify", str(tmp / "g.jsonl"), "--public-key", str(tmp / "gateway.vkey"),
            "--witness-key", str(escrow_witness), "--witness-key", str(own_witness), "--witness-quorum", "2",
            "--witness-url", f"{witness.url}/witness")
    assert r.returncode == 0, r.stderr
    assert "tsunagu.escrow/000000/witness" in r.stdout and "kansa.example/witness" in r.stdout
    r = run("audit", "verify", str(tmp / "e.jsonl"), "--public-key", str(escrow_home / "audit-verifier.txt"),
            "--witness-key", str(gw_witness))
    assert r.returncode == 0, r.stderr
    assert "tsunagu.gateway/000000/witness" in r.stdout

    # The gateway's web UI verifies its own log against the checkpoint the auditor kept, and names the witnesses.
    page = httpx.post(f"{gateway.base_url}/ui/audit/verify", cookies={COOKIE: token},
                      data={CSRF_FIELD: csrf_token(token), "checkpoint": early_note}, timeout=300)
    assert page.status_code == 200, page.text[-2000:]
    assert "検証できました" in page.text and "tsunagu.escrow/000000/witness" in page.text
    # And the report over the escrow's export checks the gateway's own cosignature on it.
    report = httpx.post(f"{gateway.base_url}/api/v1/audit/report", headers={"Authorization": f"Bearer {token}"},
                        json={"escrow_export": escrow_export}, timeout=300)
    assert report.status_code == 200 and report.json()["verified_entries"]["escrow"] > 0, report.text

    # The gateway's operator rewrites history (entry 1) and re-signs every checkpoint with the gateway's own key.
    stop_server(gateway)
    gw = Gateway.open(gw_home)
    entries = list(gw.audit.entries())
    entries[1] = AuditEntry(**{**entries[1].to_json(), "outcome": "refused: nothing happened"})
    with gw.engine.begin() as conn:
        conn.execute(delete(audit_store._entries))
        conn.execute(update(audit_store._head).values(size=0))
    for e in entries:
        gw.audit.append(e)
    gw.close()
    restarted = start_server(gateway.home, {"TSUNAGU_WITNESS_INTERVAL_SECONDS": "0"})
    try:
        r = run("audit", "witness", "sync", "--home", str(gw_home))
        assert r.returncode == 1 and "拒否" in r.stdout, r.stdout + r.stderr
        token = _login(restarted.base_url)
        rewritten = httpx.get(f"{restarted.base_url}/api/v1/audit/export", headers={"Authorization": f"Bearer {token}"}, timeout=300).text
    finally:
        stop_server(restarted)
    (tmp / "rewritten.jsonl").write_text(rewritten, encoding="utf-8")
    for witness_key in (escrow_witness, own_witness):
        r = run("audit", "verify", str(tmp / "rewritten.jsonl"), "--public-key", str(tmp / "gateway.vkey"), "--witness-key", str(witness_key))
        assert r.returncode == 1 and "連署" in r.stderr, r.stdout + r.stderr
    # The escrow's witness kept the refused checkpoint as evidence.
    assert (escrow_home / "witness" / "refusals.jsonl").read_text().count("tsunagu.gateway/000000") >= 1
    assert CliRunner().invoke(app, ["audit", "witness", "show", "--home", str(escrow_home)]).exit_code == 0
