"""Insiders against re-identification, with the real services: the gateway and the escrow on loopback, real bundle files.

Each test plays one insider of docs/security-reidentification.md and asserts
that the escrow releases nothing beyond what the gateway logged as accepted:

* a caseworker who carried a bundle file adds other children's sealed records
  to a genuine filing, or swaps them in;
* a gateway administrator takes a *refused* entry of the gateway's own log,
  with a valid inclusion proof, as evidence;
* a caseworker makes up the legal basis, the justification or the limits the
  approver is shown;
* a custodian offers another custodian's share (with its passphrase);
* anyone types control characters (U+2028, U+0085) or a name (山田太郎) into
  the fields that end up in the permanent logs.

It also checks that sealed identity material at rest (agent outbox, bundle
files, the gateway's ``drop/imported/``) is readable by its owner only and
that imported bundles are removed after their retention, and that views of a
person's page and records are in the gateway's audit log.
"""

from __future__ import annotations

import base64
import json
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from synthetic import Town

from agents.core.deliver import Outbox, write_bundles
from tests.support.gateway import PASSWORD, Home, Server, cli, start_server, stop_server, wait_for_run
from synthetic.agents import SyntheticAgent
from keys.audit import verify_export
from keys.custody import Custodian
from keys import envelope
from keys.filing import KIND as FILING_KIND
from keys.filing import RequestFiling
from keys.keyring import Keyring, init_municipality
from keys.linkage_secret import generate_linkage_secret
from keys.passphrase import KdfParams
from tests.integration.gateway.test_reidentify_end_to_end import Escrow

FAST = KdfParams(memory_kib=1024, iterations=1, lanes=1)  # small but real Argon2id
CUSTODIANS = [Custodian(f"custodian{i}", f"custodian pass {i}") for i in range(1, 4)]
GATEWAY_USERS = {"tanaka": "caseworker", "kato": "auditor", "admin": "admin"}
ESCROW_USERS = {"tanaka": ["caseworker"], "mori": ["approver"], "kato": ["auditor"],
                "custodian1": ["custodian"], "custodian2": ["custodian"]}
WHY = "長期欠席が続き、学校からの連絡もつかないため、家庭訪問で状況を確認する必要がある。"
CASE = "要対協-2026-015"
CARRIED = "school"  # the source whose submission travels as a bundle file through the drop folder


@dataclass
class Site:
    """Both services, the carried bundle file and what the gateway administrator can read on the gateway's host."""

    gateway: Server
    escrow: Escrow
    bundle: Path
    outbox_modes: list[int]
    drop: Path
    gateway_vkey: str
    share_files: list[Path]
    person: str


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, town: Town) -> Iterator[Site]:
    """A key ceremony, four agents (one delivering by bundle file through the drop folder), a gateway and an escrow."""
    root = tmp_path_factory.mktemp("insider")
    admin = root / "admin"
    ceremony = init_municipality(admin, "000000", CUSTODIANS, 2, "operator pass 1", FAST)
    linkage = generate_linkage_secret()
    agents = {s: SyntheticAgent(f"agent-{s}", n, linkage, Keyring(admin).escrow_public(), root / f"agent-{s}")
              for s, n in (("residents", "mynumber"), ("school", "edu"), ("maternal", "mynumber"), ("npo", "internet"))}
    home = Home(root / "gateway", {}, agents)
    cli(["gateway", "init", "--home", str(home.path), "--linkage-key-id", linkage.key_id])
    for username, role in GATEWAY_USERS.items():
        home.cli("user", "add", "--username", username, "--role", role, "--password-stdin", input=PASSWORD + "\n")
    for source, agent in agents.items():
        home.cli("agent", "register", "--agent-public", str(agent.public_file), "--network", agent.network, "--source", source)
    from gateway.core import Gateway

    opened = Gateway.open(home.path)
    vkey = opened.signer.verifier.vkey()
    opened.close()
    (root / "gateway-verifier.txt").write_text(vkey + "\n", encoding="utf-8")
    escrow_home = root / "escrow"
    cli(["escrow", "init", "--home", str(escrow_home), "--from-keys", str(admin), "--gateway-verifier", str(root / "gateway-verifier.txt")])
    for username, roles in ESCROW_USERS.items():
        cli(["escrow", "user", "add", "--home", str(escrow_home), "--username", username,
             *[a for r in roles for a in ("--role", r)], "--password-stdin"], input=PASSWORD + "\n")

    # The school agent delivers by bundle file: outbox first, then the real bundle writer, then carried to the drop folder.
    carrier = agents[CARRIED]
    outbox = Outbox(carrier.home)
    outbox.put(1, carrier.submit(CARRIED, town.sources[CARRIED]), {"source": CARRIED})
    outbox_modes = [_mode(p) for p in outbox.dir.iterdir()]
    written = write_bundles(outbox, root / "usb", carrier.agent_id)
    bundle = next((root / "usb").iterdir())
    assert written[0].status == "bundled"
    drop = home.path / "drop"
    drop.mkdir()
    shutil.copy(bundle, drop / bundle.name)
    cli(["gateway", "watch", "--home", str(home.path), "--drop", str(drop), "--once"])
    assert (drop / "imported" / bundle.name).exists()

    gateway, escrow = start_server(home), Escrow(escrow_home)
    try:
        with gateway.client() as c:
            for source, agent in agents.items():
                if source != CARRIED:
                    r = c.post("/api/v1/submissions", content=agent.submit(source, town.sources[source]),
                               headers={"Content-Type": "application/x-ndjson"})
                    assert r.status_code == 200, r.text
        wait_for_run(gateway)
        with gateway.client("tanaka") as c:
            persons = c.get("/api/v1/persons", params={"source": CARRIED, "min_sources": 2, "limit": 1000}).json()["persons"]
        person = next(p["person_id"] for p in persons if p["records"] == 2)
        yield Site(gateway, escrow, bundle, outbox_modes, drop, vkey, ceremony.share_files, person)
    finally:
        escrow.stop()
        stop_server(gateway)


def _bundle_records(bundle: Path) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The sealed records a carried bundle holds: its batch header and (token, base64 ciphertext) of every record."""
    lines = bundle.read_bytes().splitlines()
    header = json.loads(lines[0])["manifest"]["seal_header"]
    return header, [{"batch_header": header, "token": r["t"], "ciphertext": r["s"]} for r in map(json.loads, lines[1:])]


def _request(site: Site, **overrides: str) -> httpx.Response:
    body = {"person_id": site.person, "purpose": "early_support", "case_ref": CASE, "justification": WHY, **overrides}
    with site.gateway.client("tanaka") as c:
        return c.post("/api/v1/reidentification", json=body)


def _filing(site: Site) -> dict[str, Any]:
    """The signed filing the gateway hands the caseworker (the caseworker's client files it as it is)."""
    r = _request(site)
    assert r.status_code == 200, r.text
    return dict(r.json()["filing"])


def _fields(filing: dict[str, Any]) -> dict[str, Any]:
    """What the filing says: its manifest without the envelope's own fields."""
    return {k: v for k, v in filing["manifest"].items() if k not in ("format", "version", "kind")}


def _package(site: Site) -> dict[str, Any]:
    return _fields(_filing(site))


def _carried(filing: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """The filing with its fields edited by whoever carries it, under the gateway's original signature."""
    return {"manifest": {**filing["manifest"], **fields}, "signature": filing["signature"]}


def _signed(site: Site, fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` signed with the gateway's own key: what an insider holding the gateway's key could file."""
    from gateway.core import Gateway

    gw = Gateway.open(site.gateway.home.path)
    try:
        return dict(json.loads(envelope.head(FILING_KIND, fields, gw.signer.private_key)))
    finally:
        gw.close()


def _export(client: httpx.Client) -> str:
    r = client.get("/api/v1/audit/export")
    assert r.status_code == 200, r.text
    return r.text


def _entries(export: str) -> list[dict[str, str]]:
    return [item["entry"] for item in map(json.loads, export.strip().split("\n")) if item["type"] == "entry"]


def _escrow_log(site: Site) -> list[dict[str, str]]:
    with site.escrow.client("kato") as c:
        return _entries(_export(c))


def _gateway_log(site: Site) -> str:
    with site.gateway.client("kato") as c:
        return _export(c)


def _unsealed(site: Site) -> None:
    if httpx.get(f"{site.escrow.url}/api/v1/status").json()["sealed"]:
        for number, share in enumerate(site.share_files[:2], start=1):
            with site.escrow.client(f"custodian{number}") as c:
                r = c.post("/api/v1/unseal", json={"share": share.read_text(encoding="utf-8"),
                                                   "passphrase": CUSTODIANS[number - 1].passphrase})
                assert r.status_code == 200, r.text


def _approve_and_release(site: Site, request_id: str) -> list[dict[str, Any]]:
    with site.escrow.client("mori") as c:
        assert c.post(f"/api/v1/requests/{request_id}/approve").status_code == 200
    _unsealed(site)
    with site.escrow.client("tanaka") as c:
        r = c.post(f"/api/v1/requests/{request_id}/release")
        assert r.status_code == 200, r.text
        return r.json()["records"]


def test_records_from_a_carried_bundle_are_never_released(site: Site) -> None:
    header, carried = _bundle_records(site.bundle)
    filed = _filing(site)
    package = _fields(filed)
    mine = {(r["batch_header"]["batch_id"], r["token"]) for r in package["records"]}
    others = [r for r in carried if (header["batch_id"], r["token"]) not in mine]
    assert len(package["records"]) == 2 and len(others) >= 3

    variants = {
        "extra records": {**package, "records": package["records"] + others[:3]},
        "swapped records": {**package, "records": [package["records"][0], others[0]]},
        "fewer records": {**package, "records": package["records"][:1]},
        "another child's records only": {**package, "records": others[:2]},
    }
    with site.escrow.client("tanaka") as c:
        for name, body in variants.items():
            # Edited by the caseworker who carries it: the gateway's signature no longer holds.
            r = c.post("/api/v1/requests", json=_carried(filed, body))
            assert r.status_code == 403 and r.json()["code"] == "filing_signature_invalid", (name, r.text)
            # Signed again with the gateway's key (an insider who holds it): the logged binding still refuses.
            r = c.post("/api/v1/requests", json=_signed(site, body))
            assert r.status_code == 403 and r.json()["code"] == "binding_mismatch", (name, r.text)
            assert "ゲートウェイの監査ログに記録された内容" in r.json()["detail"], name
        assert c.get(f"/api/v1/requests/{package['request_id']}").status_code == 404  # nothing was stored
        assert c.post("/api/v1/requests", json=filed).status_code == 201  # the genuine filing still goes through
    released = _approve_and_release(site, package["request_id"])
    assert {(r["batch_id"], r["token"]) for r in released} == mine  # 0 identities beyond the records logged

    refusals = [e for e in _escrow_log(site) if e["target"] == package["request_id"] and e["action"] == "reidentify.request"
                and e["outcome"].startswith("refused")]
    codes = sorted(e["outcome"].split(":")[1].strip() for e in refusals)
    assert codes == sorted(["binding_mismatch", "filing_signature_invalid"] * len(variants))


def test_a_refused_gateway_entry_is_never_evidence(site: Site) -> None:
    assert _request(site, person_id="Pnobody").status_code == 404
    # The gateway administrator reads the refused entry, a valid inclusion proof and a signed checkpoint off the gateway's store.
    from gateway.core import Gateway

    gw = Gateway.open(site.gateway.home.path)
    try:
        entries = list(gw.audit.entries())
        index = max(i for i, e in enumerate(entries) if e.action == "reidentify.request" and e.outcome == "refused: person_not_found")
        proof = gw.audit.inclusion_proof(index, len(entries))
        checkpoint = next(n for i, n in enumerate(gw.audit.checkpoints()) if i == len(entries) - 1)
    finally:
        gw.close()
    refused = entries[index]
    header, carried = _bundle_records(site.bundle)
    filing = RequestFiling(
        request_id=refused.target, requester="tanaka", purpose=refused.purpose, legal_basis="61",
        case_ref=refused.case_ref, justification=WHY, max_records=20, approvals_required=1, records=carried[:4],
        gateway_evidence={"entry": refused.to_json(), "leaf_index": index, "checkpoint": checkpoint,
                          "inclusion_proof": [base64.b64encode(p).decode() for p in proof.proof]},
    ).model_dump(mode="json")
    assert (refused.purpose, refused.legal_basis) == ("early_support", "61")  # every field matches: only the outcome says no
    with site.escrow.client("tanaka") as c:
        r = c.post("/api/v1/requests", json=_signed(site, filing))
        assert r.status_code == 403 and r.json()["code"] == "gateway_refused", r.text
        assert "拒否された申請は開示できません" in r.json()["detail"]
        assert c.get(f"/api/v1/requests/{refused.target}").status_code == 404
    logged = [e for e in _escrow_log(site) if e["target"] == refused.target and e["action"] == "reidentify.request"]
    assert [e["outcome"].split(":")[1].strip() for e in logged] == ["gateway_refused"]


def test_a_made_up_legal_basis_justification_or_limit_is_refused(site: Site) -> None:
    filed = _filing(site)
    package = _fields(filed)
    made_up = {
        "legal_basis": ({**package, "legal_basis": "69-2-3"}, "not_in_gateway_log"),
        "justification": ({**package, "justification": "上司の指示（実際の理由とは別の文面）"}, "binding_mismatch"),
        "max_records": ({**package, "max_records": 19}, "binding_mismatch"),
    }
    with site.escrow.client("tanaka") as c:
        for name, (body, code) in made_up.items():
            r = c.post("/api/v1/requests", json=_carried(filed, body))
            assert r.status_code == 403 and r.json()["code"] == "filing_signature_invalid", (name, r.text)
            r = c.post("/api/v1/requests", json=_signed(site, body))  # even with the gateway's key, not what was logged
            assert r.status_code == 403 and r.json()["code"] == code, (name, r.text)
        assert c.post("/api/v1/requests", json=filed).status_code == 201
    with site.escrow.client("mori") as c:  # the approver sees the legal basis and justification the gateway logged
        shown = c.get(f"/api/v1/requests/{package['request_id']}").json()
    assert (shown["legal_basis"], shown["justification"], shown["case_ref"]) == ("61", WHY, CASE)


def test_a_custodian_cannot_unseal_with_another_custodians_share(site: Site) -> None:
    with site.escrow.client("custodian1") as c:
        assert c.post("/api/v1/seal").status_code == 200
    theirs = {"share": site.share_files[0].read_text(encoding="utf-8"), "passphrase": CUSTODIANS[0].passphrase}
    with site.escrow.client("custodian2") as c:
        r = c.post("/api/v1/unseal", json=theirs)  # custodian1's share and passphrase, offered by custodian2
        assert r.status_code == 403 and r.json()["code"] == "share_not_yours", r.text
        assert "持分 1 番は鍵管理者「custodian1」の持分です" in r.json()["detail"]
    assert httpx.get(f"{site.escrow.url}/api/v1/status").json()["progress"] == 0
    with site.escrow.client("custodian1") as c:
        assert c.post("/api/v1/unseal", json=theirs).json()["progress"] == 1
    unseals = [(e["actor"], e["outcome"]) for e in _escrow_log(site) if e["action"] == "escrow.unseal"][-2:]
    assert unseals[0][0] == "custodian2" and unseals[0][1].startswith("refused: share_not_yours")
    assert unseals[1] == ("custodian1", "share 1 of custodian1 accepted 1/2")  # the log names who really unsealed
    with site.escrow.client("custodian2") as c:  # and custodian2 unseals with their own share
        r = c.post("/api/v1/unseal", json={"share": site.share_files[1].read_text(encoding="utf-8"),
                                           "passphrase": CUSTODIANS[1].passphrase})
        assert r.status_code == 200 and r.json()["sealed"] is False, r.text
    assert [e["outcome"] for e in _escrow_log(site) if e["action"] == "escrow.unseal"][-1] == "unsealed with share 2 of custodian2"


@pytest.mark.parametrize("field, char", [("case_ref", "\u2028"), ("justification", "\u0085"), ("purpose", "\u2029"),
                                         ("case_ref", "\u202e")])
def test_control_characters_are_refused_at_both_doors(site: Site, field: str, char: str) -> None:
    value = {"case_ref": CASE, "justification": WHY, "purpose": "early_support"}[field]
    r = _request(site, **{field: value[:3] + char + value[3:]})
    assert r.status_code == 422 and f"U+{ord(char):04X}" in r.json()["detail"], r.text
    package = _package(site)
    if field != "purpose":
        with site.escrow.client("tanaka") as c:
            r = c.post("/api/v1/requests", json=_signed(site, {**package, field: package[field][:3] + char + package[field][3:]}))
        assert r.status_code == 422 and f"U+{ord(char):04X}" in r.json()["detail"], r.text
    # Neither log took the character, and both exports still verify, one entry per line.
    gateway = _gateway_log(site)
    assert char not in gateway
    verify_export(gateway.strip().split("\n"), pinned_vkey=site.gateway_vkey)
    with site.escrow.client("kato") as c:
        escrow = _export(c)
    assert char not in escrow
    verify_export(escrow.strip().split("\n"))


def test_a_name_as_case_reference_is_refused_and_never_logged(site: Site) -> None:
    r = _request(site, case_ref="山田太郎")
    assert r.status_code == 422 and r.json()["error"] == "case_ref_invalid" and "形式" in r.json()["detail"], r.text
    filed = _filing(site)
    with site.escrow.client("tanaka") as c:
        r = c.post("/api/v1/requests", json=_carried(filed, {"case_ref": "山田太郎"}))
        assert r.status_code == 403 and r.json()["code"] == "filing_signature_invalid", r.text
        r = c.post("/api/v1/requests", json=_signed(site, {**_fields(filed), "case_ref": "山田太郎"}))
        assert r.status_code == 403, r.text
    gateway = _gateway_log(site)
    assert "山田太郎" not in gateway
    assert any(e["case_ref"] == "（形式外の案件番号）" and e["outcome"] == "refused: case_ref_invalid" for e in _entries(gateway))
    with site.escrow.client("kato") as c:
        assert "山田太郎" not in _export(c)
    for home in (site.gateway.home.path, site.escrow.home):  # nor anything else either service wrote: databases, logs
        for path in home.rglob("*"):
            if path.is_file():
                assert "山田太郎".encode("utf-8") not in path.read_bytes(), path


def test_sealed_material_at_rest_is_owner_only_and_imported_bundles_expire(site: Site) -> None:
    assert site.outbox_modes and all(m == 0o600 for m in site.outbox_modes)
    assert _mode(site.bundle) == 0o600 and _mode(site.bundle.parent) == 0o700
    imported = site.drop / "imported"
    assert _mode(imported) == 0o700 and _mode(imported / site.bundle.name) == 0o600
    # The next poll keeps it within the retention, and removes it once the retention has passed.
    cli(["gateway", "watch", "--home", str(site.gateway.home.path), "--drop", str(site.drop), "--once"])
    assert (imported / site.bundle.name).exists()
    cli(["gateway", "watch", "--home", str(site.gateway.home.path), "--drop", str(site.drop), "--once"],
        env={"TSUNAGU_DROP_IMPORTED_RETENTION_DAYS": "0"})
    assert not (imported / site.bundle.name).exists()


def test_views_of_a_person_and_records_are_logged(site: Site) -> None:
    with site.gateway.client("tanaka") as c:
        records = c.get(f"/api/v1/persons/{site.person}").json()["records"]
        assert c.get(f"/api/v1/persons/{site.person}/timeline").status_code == 200
        token = records[0]["token"]
        assert c.get(f"/api/v1/records/{records[0]['source']}/{token}").json()["person_id"] == site.person
    views = [(e["actor"], e["action"], e["target"]) for e in _entries(_gateway_log(site))]
    assert ("tanaka", "persons.view", site.person) in views
    assert ("tanaka", "persons.timeline", site.person) in views
    assert ("tanaka", "records.view", f"{records[0]['source']}:{token}") in views
