"""Escrow test fixtures: a key ceremony, a gateway-side audit log, an escrow home set up through the CLI, and the real server.

The server is the real ``tsunagu escrow serve`` (uvicorn) in a subprocess on
a free loopback port, talked to over HTTP with httpx. The gateway side is the
real keys library (a sealed batch and an AuditStore with its own signing
key), standing in until the gateway files requests itself.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from keys import binding, envelope, seal
from keys.audit import AuditEntry
from service.audit_store import AuditStore, open_log
from service.db import sqlite_engine
from tests.support import server as _server
from transparency.tlog_checkpoint import Signer
from keys.filing import KIND as FILING_KIND
from keys.filing import RequestFiling
from keys.custody import Custodian
from keys.keyring import Keyring, init_municipality
from keys.passphrase import KdfParams
from tsunagu.cli import app

FAST = KdfParams(memory_kib=1024, iterations=1, lanes=1)  # small but real Argon2id
PASSWORD = "correct horse battery staple"
CUSTODIANS = [Custodian(f"custodian{i}", f"custodian pass {i}") for i in range(1, 6)]
USERS = {"custodian1": ["custodian"], "custodian2": ["custodian"], "custodian3": ["custodian"], "custodian4": ["custodian"],
         "custodian5": ["custodian"], "admin": ["admin"],
         "tanaka": ["caseworker"], "suzuki": ["caseworker"], "sato": ["approver"], "ito": ["approver"], "kato": ["auditor"],
         "mori": ["caseworker", "approver"]}  # a supervisor who also files requests
IDENTITIES = {
    "tok-a": {"family_name": "山田", "given_name": "太郎", "birth_date": "2015-04-01", "address": "見本市本町1-1", "record_id": "G-0001"},
    "tok-b": {"family_name": "佐々木", "given_name": "花子", "birth_date": "2016-05-02", "address": "見本市北町2-2", "record_id": "G-0002"},
    "tok-c": {"family_name": "高橋", "given_name": "次郎", "birth_date": "2014-06-03", "address": "見本市南町3-3", "record_id": "G-0003"},
}
TSUNAGU = str(Path(sys.executable).with_name("tsunagu"))


def cli(args: list[str], input: str | None = None) -> str:
    """Run a `tsunagu` command in-process; fail the test with its output if it fails."""
    result = CliRunner().invoke(app, args, input=input)
    assert result.exit_code == 0, f"{args[:3]} → {result.exit_code}: {result.output}{result.exception!r}"
    return result.output


@dataclass
class Ceremony:
    """A municipality's key hierarchy (keys API, small Argon2 parameters) and a sealed batch of three records."""

    admin_home: Path
    share_files: list[Path]
    batch: seal.SealedBatch


@dataclass
class GatewayLog:
    """The gateway's side of a request: its own audit log and checkpoint key (the real keys library)."""

    store: AuditStore
    signer: Signer
    verifier_file: Path

    def log_request(self, request_id: str, requester: str = "tanaka", purpose: str = "child_protection",
                    legal_basis: str = "69-2-2", case_ref: str = "要対協-2026-015", outcome: str = "refused: test") -> dict[str, Any]:
        """Append the request's entry and return the evidence the escrow wants: entry, index, proof, checkpoint."""
        entry = AuditEntry.now(actor=requester, role="caseworker", action="reidentify.request", outcome=outcome,
                               target=request_id, purpose=purpose, legal_basis=legal_basis, case_ref=case_ref)
        receipt = self.store.append(entry)
        return {"entry": entry.to_json(), "leaf_index": receipt.index,
                "inclusion_proof": [base64.b64encode(p).decode() for p in receipt.proof.proof], "checkpoint": receipt.checkpoint}


@pytest.fixture(scope="session")
def ceremony(tmp_path_factory: pytest.TempPathFactory) -> Ceremony:
    """`tsunagu keys init` through the keys API, 3 of 5 custodians, and a batch sealed to its escrow key."""
    home = tmp_path_factory.mktemp("admin")
    result = init_municipality(home, "131016", CUSTODIANS, 3, "operator pass 1", FAST)
    batch = seal.seal_batch(Keyring(home).escrow_public(), "school", "batch-1", IDENTITIES)
    return Ceremony(home, result.share_files, batch)


@pytest.fixture(scope="session")
def gateway_log(tmp_path_factory: pytest.TempPathFactory) -> GatewayLog:
    """A gateway-side audit log (SQLite, temp dir) with a checkpoint key the escrow is told about."""
    folder = tmp_path_factory.mktemp("gateway")
    signer = Signer("tsunagu-gateway", Ed25519PrivateKey.generate())
    store = open_log(sqlite_engine(str(folder / "audit.db")), signer, "tsunagu.gateway/131016")
    for number in range(5):  # the request is not the first thing the gateway ever logged
        store.append(AuditEntry.now(actor="admin", role="admin", action="submission.accept", outcome="ok", target=f"sub-{number}"))
    (folder / "verifier.txt").write_text(signer.verifier.vkey() + "\n", encoding="utf-8")
    return GatewayLog(store, signer, folder / "verifier.txt")


@pytest.fixture(scope="session")
def escrow_home(ceremony: Ceremony, gateway_log: GatewayLog, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An escrow home set up with `tsunagu escrow init` and `tsunagu escrow user add`, one user per name in USERS."""
    home = tmp_path_factory.mktemp("escrow") / "home"
    cli(["escrow", "init", "--home", str(home), "--from-keys", str(ceremony.admin_home),
         "--gateway-verifier", str(gateway_log.verifier_file)])
    for username, roles in USERS.items():
        cli(["escrow", "user", "add", "--home", str(home), "--username", username, *[a for r in roles for a in ("--role", r)],
             "--password-stdin"], input=PASSWORD + "\n")
    return home


@dataclass
class Server:
    """A running `tsunagu escrow serve`, with a signed-in client per user."""

    base_url: str
    home: Path
    process: subprocess.Popen
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    def client(self, username: str | None = None) -> httpx.Client:
        """An httpx client, signed in as ``username`` if given (one session per user and server)."""
        if username is None:
            return httpx.Client(base_url=self.base_url, timeout=300)
        if username not in self.clients:
            self.clients[username] = httpx.Client(base_url=self.base_url, timeout=300,
                                                  headers={"Authorization": f"Bearer {self.login(username)}"})
        return self.clients[username]

    def login(self, username: str) -> str:
        """A fresh session token of ``username``."""
        r = httpx.post(f"{self.base_url}/api/v1/auth/login", json={"username": username, "password": PASSWORD}, timeout=300)
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def unseal(self, ceremony: Ceremony, picks: tuple[int, ...] = (0, 1, 2)) -> dict[str, Any]:
        """The custodians of the shares ``picks`` each offer their own share, signed in as themselves; returns the last answer."""
        answer: dict[str, Any] = {}
        for pick in picks:
            r = self.client(CUSTODIANS[pick].name).post("/api/v1/unseal", json={
                "share": ceremony.share_files[pick].read_text(encoding="utf-8"), "passphrase": CUSTODIANS[pick].passphrase})
            assert r.status_code == 200, r.text
            answer = r.json()
        return answer

    def stop(self) -> None:
        """Stop the server gracefully and close the clients."""
        for c in self.clients.values():
            c.close()
        _server.stop(self.process)


def start_server(home: Path, **settings: str) -> Server:
    """Start the real server on a free port (``settings`` as TSUNAGU_ESCROW_* variables) and wait until it answers."""
    port = _server.free_port()
    env = {**os.environ, **{f"TSUNAGU_ESCROW_{k.upper()}": v for k, v in settings.items()}}
    process, base = _server.start([TSUNAGU, "escrow", "serve", "--home", str(home)], "/api/v1/status",
                                  home / f"serve-{port}.out", env, port=port)
    return Server(base, home, process)


@pytest.fixture
def server(escrow_home: Path) -> Iterator[Server]:
    """A freshly started escrow server (sealed, as after every start) on the session's escrow home."""
    s = start_server(escrow_home)
    yield s
    s.stop()


def bound_outcome(records: list[dict[str, Any]], justification: str, *, approvals: int, max_records: int,
                  person: str = "P0001") -> str:
    """The outcome the gateway logs for an accepted request covering exactly ``records`` (``keys.binding``)."""
    digest = binding.records_digest((r["batch_header"]["batch_id"], r["token"], seal.BatchHeader.from_json(r["batch_header"]).to_json(),
                                     base64.b64decode(r["ciphertext"])) for r in records)
    return binding.accepted_outcome(binding.Binding(person, len(records), digest, binding.justification_digest(justification),
                                                    approvals, max_records))


def filing(ceremony: Ceremony, gateway_log: GatewayLog, request_id: str, tokens: list[str], *, max_records: int = 5,
           approvals_required: int = 2, requester: str = "tanaka", outcome: str | None = None, **logged: str) -> dict[str, Any]:
    """The request body as the gateway files it (``keys.filing``: the shared ``RequestFiling`` in an envelope the gateway
    signed), its entry freshly logged in the gateway's audit log.

    The entry's outcome binds exactly these records and this justification, unless ``outcome`` says otherwise.
    """
    header = ceremony.batch.header.to_json()
    fields = {"purpose": "child_protection", "legal_basis": "69-2-2", "case_ref": "要対協-2026-015"}
    justification = "要保護児童対策地域協議会の個別ケース検討のため、世帯を特定して家庭訪問する必要がある。"
    records = [{"batch_header": header, "token": t, "ciphertext": base64.b64encode(ceremony.batch.records[t]).decode()}
               for t in tokens]
    if outcome is None:
        outcome = bound_outcome(records, justification, approvals=approvals_required, max_records=max_records)
    return sealed_filing(gateway_log, RequestFiling(
        request_id=request_id, requester=requester, **fields, justification=justification, max_records=max_records,
        approvals_required=approvals_required, records=records,
        gateway_evidence=gateway_log.log_request(request_id, requester=requester, outcome=outcome, **{**fields, **logged}),
    ).model_dump(mode="json"))


def sealed_filing(gateway_log: GatewayLog, fields: dict[str, Any]) -> dict[str, Any]:
    """A filing's fields signed with the gateway's key, as the gateway answers (``keys.filing.seal``)."""
    return dict(json.loads(envelope.head(FILING_KIND, fields, gateway_log.signer.private_key)))


def resigned(gateway_log: GatewayLog, envelope: dict[str, Any]) -> dict[str, Any]:
    """A filing envelope whose manifest a test edited, signed again by the gateway's key (a gateway that signs what it did not log)."""
    return sealed_filing(gateway_log, {k: v for k, v in envelope["manifest"].items() if k not in ("format", "version", "kind")})
