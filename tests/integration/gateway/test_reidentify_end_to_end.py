"""Re-identification through the whole path: the real gateway and escrow servers on loopback, the caseworker's client between them.

Agents seal identities to the escrow key of a real key ceremony; the gateway
links, screens and logs the request; the caseworker's client (`tsunagu
casework`) files it at the escrow; approvers approve there; custodians
unseal; the escrow releases exactly that child's identity, once.
Abuse along the way is refused with a reason and logged in the right log.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from synthetic import Town
from sqlalchemy import create_engine, update
from typer.testing import CliRunner

from agents.core.token import RecordTokeniser
from tests.support import server as _server
from tests.support.gateway import PASSWORD, TSUNAGU, Home, Server, cli, start_server, stop_server, wait_for_run
from gateway.db import utcnow
from synthetic.agents import SyntheticAgent
from keys.custody import Custodian
from keys.keyring import Keyring, init_municipality
from keys.linkage_secret import generate_linkage_secret
from keys.passphrase import KdfParams
from linkage.record import IDENTITY_COLUMNS, CanonicalRecord
from tsunagu.cli import app

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
FAST = KdfParams(memory_kib=1024, iterations=1, lanes=1)  # small but real Argon2id
CUSTODIANS = [Custodian(f"custodian{i}", f"custodian pass {i}") for i in range(1, 4)]
# Gateway and escrow users share names, not stores: "mori" is a supervisor who also files requests.
GATEWAY_USERS = {"tanaka": "caseworker", "mori": "caseworker", "kato": "auditor", "admin": "admin"}
ESCROW_USERS = {"tanaka": ["caseworker"], "mori": ["caseworker", "approver"], "sato": ["approver"], "kato": ["auditor"],
                "custodian1": ["custodian"], "custodian2": ["custodian"]}
WHY = "長期欠席が続き、学校からの連絡もつかないため、家庭訪問で状況を確認する必要がある。"


class Escrow:
    """A running `tsunagu escrow serve`."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.process, self.url = _server.start([TSUNAGU, "escrow", "serve", "--home", str(home)], "/api/v1/status",
                                               home / "serve.out", os.environ.copy())

    def client(self, username: str) -> httpx.Client:
        """A client signed in as ``username``."""
        r = httpx.post(f"{self.url}/api/v1/auth/login", json={"username": username, "password": PASSWORD}, timeout=300)
        assert r.status_code == 200, r.text
        return httpx.Client(base_url=self.url, timeout=300, headers={"Authorization": f"Bearer {r.json()['access_token']}"})

    def stop(self) -> None:
        """Stop gracefully."""
        _server.stop(self.process)


@pytest.fixture
def deployment(tmp_path: Path, town: Town, database_url: str | None) -> Iterator[tuple[Server, Escrow, dict, list[Path]]]:
    """A key ceremony, agents sealing to its escrow key, a gateway and an escrow set up through the CLI and serving."""
    admin = tmp_path / "admin"
    ceremony = init_municipality(admin, "000000", CUSTODIANS, 2, "operator pass 1", FAST)
    escrow_public = Keyring(admin).escrow_public()
    linkage = generate_linkage_secret()
    agents = {s: SyntheticAgent(f"agent-{s}", n, linkage, escrow_public, tmp_path / f"agent-{s}")
              for s, n in (("residents", "mynumber"), ("school", "edu"), ("maternal", "mynumber"), ("npo", "internet"))}

    home = Home(tmp_path / "gateway", {}, agents)
    cli(["gateway", "init", "--home", str(home.path), "--linkage-key-id", linkage.key_id])
    for username, role in GATEWAY_USERS.items():
        home.cli("user", "add", "--username", username, "--role", role, "--password-stdin", input=PASSWORD + "\n")
    for source, agent in agents.items():
        home.cli("agent", "register", "--agent-public", str(agent.public_file), "--network", agent.network, "--source", source)
    from gateway.core import Gateway

    opened = Gateway.open(home.path)
    (tmp_path / "gateway-verifier.txt").write_text(opened.signer.verifier.vkey() + "\n", encoding="utf-8")
    opened.close()

    escrow_home = tmp_path / "escrow"
    cli(["escrow", "init", "--home", str(escrow_home), "--from-keys", str(admin), "--gateway-verifier", str(tmp_path / "gateway-verifier.txt")])
    for username, roles in ESCROW_USERS.items():
        cli(["escrow", "user", "add", "--home", str(escrow_home), "--username", username,
             *[a for r in roles for a in ("--role", r)], "--password-stdin"], input=PASSWORD + "\n")

    gateway, escrow = start_server(home), Escrow(escrow_home)
    try:
        with gateway.client() as c:
            for source, agent in agents.items():
                r = c.post("/api/v1/submissions", content=agent.submit(source, town.sources[source]),
                           headers={"Content-Type": "application/x-ndjson"})
                assert r.status_code == 200, r.text
        wait_for_run(gateway)
        expected = _identities_by_token(town, linkage.secret)
        yield gateway, escrow, expected, ceremony.share_files
    finally:
        escrow.stop()
        stop_server(gateway)


def _identities_by_token(town: Town, secret: bytes) -> dict[tuple[str, str], dict[str, str]]:
    """What the agents sealed, per (source, record token): computed here from the town, as an agent would."""
    out = {}
    for source, rows in town.sources.items():
        tokeniser = RecordTokeniser(secret, source)
        for row in rows:
            token = tokeniser.token(CanonicalRecord.from_mapping(row).record_id)
            out[(source, token)] = {c: row.get(c, "") for c in IDENTITY_COLUMNS}
    return out


def _casework(*args: str, passwords: int = 1) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["casework", *args, "--password-stdin"], input=(PASSWORD + "\n") * passwords)
    return result.exit_code, result.output + (str(result.exception) if result.exception else "")


def _entries(export: str) -> list[dict[str, str]]:
    return [json.loads(line)["entry"] for line in export.splitlines() if json.loads(line)["type"] == "entry"]


@SQLITE
def test_request_approve_unseal_release_exactly_that_childs_identity_once(deployment, tmp_path: Path) -> None:
    gateway, escrow, expected, shares = deployment
    with gateway.client("tanaka") as c:
        listing = c.get("/api/v1/screening").json()
        assert listing["entries"], listing
        person = listing["entries"][0]["person_id"]
        records = c.get(f"/api/v1/persons/{person}").json()["records"]
    tokens = {(r["source"], r["token"]) for r in records}

    code, out = _casework("request", "--gateway", gateway.base_url, "--escrow", escrow.url, "--username", "tanaka",
                          "--person", person, "--purpose", "early_support", "--case-ref", "こども家庭センター-2026-101",
                          "--justification", WHY, passwords=2)
    assert code == 0, out
    request_id = out.strip().splitlines()[-1]
    assert request_id.startswith("reid-")

    # Not approved yet; the requester cannot approve (no approver role) nor can a supervisor approve their own request.
    code, out = _casework("release", "--escrow", escrow.url, "--username", "tanaka", "--request", request_id)
    assert code != 0 and "承認が足りません" in out
    with escrow.client("tanaka") as c:
        assert c.post(f"/api/v1/requests/{request_id}/approve").status_code == 403
    code, out = _casework("request", "--gateway", gateway.base_url, "--escrow", escrow.url, "--username", "mori",
                          "--person", person, "--purpose", "early_support", "--case-ref", "こども家庭センター-2026-102",
                          "--justification", WHY, passwords=2)
    assert code == 0, out
    own = out.strip().splitlines()[-1]
    code, out = _casework("approve", "--escrow", escrow.url, "--username", "mori", "--request", own)
    assert code != 0 and "自分の申請" in out
    code, out = _casework("list", "--escrow", escrow.url, "--username", "mori")
    assert code == 0 and request_id in out and own in out and WHY in out
    code, out = _casework("approve", "--escrow", escrow.url, "--username", "mori", "--request", request_id, "--reason", "ケース会議で確認")
    assert code == 0 and "承認済み" in out, out
    code, out = _casework("status", "--escrow", escrow.url, "--username", "tanaka", "--request", request_id)
    assert code == 0 and "承認 1/1" in out and "受け取り期限" in out, out

    # Approved, but the escrow is sealed until k custodians unseal it.
    code, out = _casework("release", "--escrow", escrow.url, "--username", "tanaka", "--request", request_id)
    assert code != 0 and "封印されています" in out
    for number, share in enumerate(shares[:2], start=1):
        with escrow.client(f"custodian{number}") as c:
            r = c.post("/api/v1/unseal", json={"share": share.read_text(encoding="utf-8"), "passphrase": CUSTODIANS[number - 1].passphrase})
            assert r.status_code == 200, r.text
    assert httpx.get(f"{escrow.url}/api/v1/status").json()["sealed"] is False

    code, out = _casework("release", "--escrow", escrow.url, "--username", "tanaka", "--request", request_id)
    assert code == 0, out
    released = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert {(r["source"], r["token"]) for r in released} == tokens
    for r in released:
        assert r["identity"] == expected[(r["source"], r["token"])]

    # Once only.
    code, out = _casework("release", "--escrow", escrow.url, "--username", "tanaka", "--request", request_id)
    assert code != 0 and "既に開示済み" in out

    # Both logs tell the story; the auditors' report joins them.
    with gateway.client("kato") as c:
        gateway_export = c.get("/api/v1/audit/export").text
    with escrow.client("kato") as c:
        escrow_export = c.get("/api/v1/audit/export").text
    (tmp_path / "g.jsonl").write_text(gateway_export, encoding="utf-8")
    (tmp_path / "e.jsonl").write_text(escrow_export, encoding="utf-8")
    g = _entries(gateway_export)
    assert [e["action"] for e in g if e["target"] == request_id] == ["reidentify.request"]
    assert any(e["action"] == "screening.view" and e["actor"] == "tanaka" for e in g)
    e = [(x["actor"], x["action"], x["outcome"].split(":")[0]) for x in _entries(escrow_export) if x["target"] == request_id]
    assert e == [("tanaka", "reidentify.request", "filed"), ("tanaka", "reidentify.release", "refused"),
                 ("tanaka", "reidentify.approve", "refused"), ("mori", "reidentify.approve", "approved"),
                 ("tanaka", "reidentify.release", "refused"), ("tanaka", "reidentify.release", "released"),
                 ("tanaka", "reidentify.release", "refused")]
    result = CliRunner().invoke(app, ["audit", "requests", "--gateway-export", str(tmp_path / "g.jsonl"),
                                      "--escrow-export", str(tmp_path / "e.jsonl"), "--json"])
    assert result.exit_code == 0, result.output
    report = {r["request_id"]: r for r in json.loads(result.output[result.output.index("["):])}
    over_http = CliRunner().invoke(app, ["audit", "requests", "--gateway", gateway.base_url, "--escrow", escrow.url,
                                         "--username", "kato", "--password-stdin"], input=(PASSWORD + "\n") * 2)
    assert over_http.exit_code == 0 and request_id in over_http.output and "開示済み" in over_http.output, over_http.output
    assert report[request_id]["outcome"] == "released" and report[request_id]["approvals"][0]["approver"] == "mori"
    assert report[own]["outcome"] == "pending" and report[own]["refusals"][0]["actor"] == "mori"

    # Nothing of the identities reached the gateway's home (database, logs, exports).
    names = {v for r in released for k, v in r["identity"].items() if k in ("family_name", "given_name", "address") and len(v) >= 2}
    for path in gateway.home.path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not [n for n in names if n.encode("utf-8") in data], path


@SQLITE
def test_forged_requests_and_expired_sessions_are_refused_and_logged(deployment) -> None:
    gateway, escrow, _expected, _shares = deployment
    with gateway.client("tanaka") as c:
        person = c.get("/api/v1/screening").json()["entries"][0]["person_id"]
        package = c.post("/api/v1/reidentification", json={"person_id": person, "purpose": "early_support",
                                                            "case_ref": "要対協-2026-015", "justification": WHY}).json()
        r = c.post("/api/v1/reidentification", json={"person_id": person, "purpose": "early_support", "justification": WHY})
        assert r.status_code == 422 and "案件番号" in r.json()["detail"]
    filed = package["filing"]

    def edited(**fields: str) -> dict:  # the carried filing with fields changed, under the gateway's signature
        return {"manifest": {**filed["manifest"], **fields}, "signature": filed["signature"]}

    with escrow.client("tanaka") as c:
        for forged in (edited(case_ref="別の案件"), edited(request_id="reid-never-logged")):
            r = c.post("/api/v1/requests", json=forged)
            assert r.status_code == 403 and r.json()["code"] == "filing_signature_invalid" and "書き換えられて" in r.json()["detail"]
        unsigned = {k: v for k, v in filed["manifest"].items() if k not in ("format", "version", "kind")}
        r = c.post("/api/v1/requests", json=unsigned)  # the filing as gateways before the envelope wrote it
        assert r.status_code == 422, r.text
        assert c.post("/api/v1/requests", json=filed).status_code == 201
        r = c.post("/api/v1/requests", json=filed)
        assert r.status_code == 409
    with escrow.client("mori") as c:  # a caseworker may file only for themselves
        r = c.post("/api/v1/requests", json=filed)
        assert r.status_code == 403

    # An expired gateway session: refused, and the refusal is in the gateway's audit log.
    token = gateway.token("tanaka")
    engine = create_engine(f"sqlite:///{gateway.home.path / 'gateway.db'}")
    from gateway import models

    with engine.begin() as conn:
        conn.execute(update(models.sessions).values(expires_at=utcnow() - timedelta(minutes=1)))
    engine.dispose()
    r = httpx.post(f"{gateway.base_url}/api/v1/reidentification", headers={"Authorization": f"Bearer {token}"}, timeout=300,
                   json={"person_id": person, "purpose": "early_support", "case_ref": "要対協-2026-015", "justification": WHY})
    assert r.status_code == 401 and "有効期限" in r.json()["detail"]
    gateway.tokens.clear()
    with gateway.client("kato") as c:
        logged = [e for e in _entries(c.get("/api/v1/audit/export").text) if e["action"] == "reidentify.request"]
    assert [x["outcome"].split(":")[0] for x in logged] == ["accepted", "refused", "refused"]
    assert logged[-1]["outcome"] == "refused: token_expired" and logged[-1]["actor"] == "（未認証）"
    assert logged[1]["outcome"] == "refused: case_ref_required"
