"""The escrow service over HTTP: sealed after start, k-of-n unseal, approval by others, one logged release, refusals."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

from tests.support.escrow import CUSTODIANS, FAST, IDENTITIES, PASSWORD, Ceremony, GatewayLog, Server, filing, resigned, start_server
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keys.audit import AuditEntry
from transparency.tlog_checkpoint import Signer, sign_checkpoint, verify_checkpoint
from keys.custody import Custodian
from keys.keyring import init_municipality

SEALED = "エスクローは封印されています（鍵管理者による開封が必要です）"


def _share(ceremony: Ceremony, pick: int, passphrase: str | None = None) -> dict[str, str]:
    return {"share": ceremony.share_files[pick].read_text(encoding="utf-8"),
            "passphrase": CUSTODIANS[pick].passphrase if passphrase is None else passphrase}


def _audit(server: Server) -> list[dict[str, str]]:
    r = server.client("kato").get("/api/v1/audit/export")
    assert r.status_code == 200, r.text
    return [json.loads(line)["entry"] for line in r.text.splitlines() if json.loads(line)["type"] == "entry"]


def test_sealed_after_start_and_unsealed_by_k_custodians(server: Server, ceremony: Ceremony, tmp_path: Path) -> None:
    status = server.client().get("/api/v1/status").json()
    assert status == {"sealed": True, "progress": 0, "threshold": 3, "custodians": 5, "escrow_key_id": status["escrow_key_id"]}

    one = server.client("custodian1")
    r = one.post("/api/v1/unseal", json=_share(ceremony, 0))
    assert (r.status_code, r.json()["sealed"], r.json()["progress"], r.json()["threshold"]) == (200, True, 1, 3)

    two = server.client("custodian2")
    r = two.post("/api/v1/unseal", json=_share(ceremony, 1, "not my passphrase"))
    assert r.status_code == 400 and "パスフレーズが違います" in r.json()["detail"]
    # Another custodian's share (even the one already in) is refused: a share is its custodian's only.
    r = two.post("/api/v1/unseal", json=_share(ceremony, 0))
    assert r.status_code == 403 and "持分 1 番は鍵管理者「custodian1」の持分です" in r.json()["detail"]
    other = init_municipality(tmp_path / "other", "999999", [Custodian("custodian2", "x pass 1"), Custodian("y", "y pass 2")], 2,
                              "op pass 1", FAST)
    r = two.post("/api/v1/unseal", json={"share": other.share_files[0].read_text(encoding="utf-8"), "passphrase": "x pass 1"})
    assert r.status_code == 400 and "別のエスクロー鍵" in r.json()["detail"]
    r = one.post("/api/v1/unseal", json=_share(ceremony, 3))
    assert r.status_code == 409 and "既に持分を提出しました" in r.json()["detail"]
    r = server.client("tanaka").post("/api/v1/unseal", json=_share(ceremony, 1))
    assert r.status_code == 403
    assert server.client().get("/api/v1/status").json()["progress"] == 1

    assert two.post("/api/v1/unseal", json=_share(ceremony, 1)).json() | {"escrow_key_id": ""} == \
        {"sealed": True, "progress": 2, "threshold": 3, "custodians": 5, "escrow_key_id": ""}
    r = server.client("custodian3").post("/api/v1/unseal", json=_share(ceremony, 2))
    assert (r.status_code, r.json()["sealed"]) == (200, False)
    assert server.client("custodian3").post("/api/v1/unseal", json=_share(ceremony, 2)).status_code == 409

    r = server.client("admin").post("/api/v1/seal")
    assert r.status_code == 200 and r.json()["sealed"] is True and r.json()["progress"] == 0
    assert server.client("sato").post("/api/v1/seal").status_code == 403

    outcomes = [(e["actor"], e["action"], e["outcome"].split(":")[0]) for e in _audit(server)]
    assert ("custodian2", "escrow.unseal", "refused") in outcomes
    full = [(e["actor"], e["action"], e["outcome"]) for e in _audit(server)]
    # The log names who really unsealed: each accepted share is the signed-in custodian's own.
    assert ("custodian2", "escrow.unseal", "share 2 of custodian2 accepted 2/3") in full
    assert ("custodian3", "escrow.unseal", "unsealed with share 3 of custodian3") in full
    assert ("admin", "escrow.seal", "sealed") in outcomes


def test_request_approved_by_others_and_released_once(server: Server, ceremony: Ceremony, gateway_log: GatewayLog) -> None:
    mori, tanaka, sato, ito = (server.client(u) for u in ("mori", "tanaka", "sato", "ito"))  # mori: caseworker and approver
    body = filing(ceremony, gateway_log, "reid-flow-1", ["tok-b"], max_records=1, requester="mori")
    r = mori.post("/api/v1/requests", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "pending" and r.json()["records"] == [{"source": "school", "batch_id": "batch-1", "token": "tok-b"}]

    r = mori.post("/api/v1/requests/reid-flow-1/approve")
    assert r.status_code == 403 and "申請者本人は自分の申請を承認・却下できません" in r.json()["detail"]
    assert tanaka.post("/api/v1/requests/reid-flow-1/release").status_code == 403  # not the requester
    assert tanaka.post("/api/v1/requests/reid-flow-1/approve").status_code == 403  # no approver

    r = sato.post("/api/v1/requests/reid-flow-1/approve", json={"reason": "ケース会議で確認済み"})
    assert (r.status_code, r.json()["status"], r.json()["approvals"]) == (200, "pending", 1)
    r = mori.post("/api/v1/requests/reid-flow-1/release")
    assert r.status_code == 409 and "承認が足りません（1/2）" in r.json()["detail"]
    assert sato.post("/api/v1/requests/reid-flow-1/approve").status_code == 409  # one approval per approver
    assert ito.post("/api/v1/requests/reid-flow-1/approve").json()["status"] == "approved"

    r = mori.post("/api/v1/requests/reid-flow-1/release")
    assert (r.status_code, r.json()["detail"]) == (503, SEALED)
    server.unseal(ceremony, (4, 2, 0))
    r = mori.post("/api/v1/requests/reid-flow-1/release")
    assert r.status_code == 200, r.text
    assert r.json()["records"] == [{"source": "school", "batch_id": "batch-1", "token": "tok-b", "identity": IDENTITIES["tok-b"]}]
    r = mori.post("/api/v1/requests/reid-flow-1/release")
    assert r.status_code == 410 and "既に開示済みです" in r.json()["detail"]

    listed = {q["request_id"]: q for q in sato.get("/api/v1/requests").json()}["reid-flow-1"]
    assert listed["status"] == "released" and listed["released_at"] and listed["requester"] == "mori"
    assert [(d["approver"], d["decision"]) for d in listed["decisions"]] == [("sato", "approve"), ("ito", "approve")]
    assert "reid-flow-1" not in {q["request_id"] for q in tanaka.get("/api/v1/requests").json()}

    entries = [e for e in _audit(server) if e["target"] == "reid-flow-1"]
    assert [(e["actor"], e["action"], e["outcome"].split(":")[0]) for e in entries] == [
        ("mori", "reidentify.request", "filed"), ("mori", "reidentify.approve", "refused"),
        ("tanaka", "reidentify.release", "refused"), ("tanaka", "reidentify.approve", "refused"),
        ("sato", "reidentify.approve", "approved"), ("mori", "reidentify.release", "refused"),
        ("sato", "reidentify.approve", "refused"), ("ito", "reidentify.approve", "approved"),
        ("mori", "reidentify.release", "refused"), ("mori", "reidentify.release", "released"),
        ("mori", "reidentify.release", "refused")]
    assert {"purpose": "child_protection", "legal_basis": "69-2-2", "case_ref": "要対協-2026-015"}.items() <= entries[-2].items()

    stored = b"".join(p.read_bytes() for p in server.home.iterdir() if p.is_file())  # database, WAL, server output
    for identity in IDENTITIES.values():
        for value in identity.values():
            assert value.encode("utf-8") not in stored


def test_forged_or_oversized_requests_are_refused(server: Server, ceremony: Ceremony, gateway_log: GatewayLog) -> None:
    tanaka = server.client("tanaka")

    edited = filing(ceremony, gateway_log, "reid-forged-1", ["tok-a"])
    edited["manifest"]["gateway_evidence"]["entry"]["case_ref"] = edited["manifest"]["case_ref"] = "別の案件"
    r = tanaka.post("/api/v1/requests", json=edited)  # edited on the way: the gateway's signature no longer holds
    assert r.status_code == 403 and r.json()["code"] == "filing_signature_invalid" and "書き換えられて" in r.json()["detail"]
    r = tanaka.post("/api/v1/requests", json=resigned(gateway_log, edited))  # signed, but not what the log holds
    assert r.status_code == 403 and "含まれていません" in r.json()["detail"]

    mismatch = filing(ceremony, gateway_log, "reid-forged-2", ["tok-a"], purpose="early_support")
    r = tanaka.post("/api/v1/requests", json=mismatch)
    assert r.status_code == 403 and "purpose" in r.json()["detail"]

    foreign = filing(ceremony, gateway_log, "reid-forged-3", ["tok-a"])
    cp = verify_checkpoint(foreign["manifest"]["gateway_evidence"]["checkpoint"], gateway_log.signer.verifier)
    foreign["manifest"]["gateway_evidence"]["checkpoint"] = sign_checkpoint(cp, Signer("tsunagu-gateway", Ed25519PrivateKey.generate()))
    r = tanaka.post("/api/v1/requests", json=resigned(gateway_log, foreign))
    assert r.status_code == 403 and "チェックポイントを検証できません" in r.json()["detail"]

    other = filing(ceremony, gateway_log, "reid-forged-4", ["tok-a"], requester="suzuki")
    assert tanaka.post("/api/v1/requests", json=other).status_code == 403  # filed for someone else

    too_many = filing(ceremony, gateway_log, "reid-big-1", ["tok-a", "tok-b", "tok-c"], max_records=2)
    r = tanaka.post("/api/v1/requests", json=too_many)
    assert r.status_code == 422 and "上限 2 件を超えています" in r.json()["detail"]
    no_approval = filing(ceremony, gateway_log, "reid-big-2", ["tok-a"], approvals_required=0)
    assert tanaka.post("/api/v1/requests", json=no_approval).status_code == 422

    good = filing(ceremony, gateway_log, "reid-ok-1", ["tok-c"])
    assert tanaka.post("/api/v1/requests", json=good).status_code == 201
    assert tanaka.post("/api/v1/requests", json=copy.deepcopy(good)).status_code == 409
    assert server.client("sato").post("/api/v1/requests", json=filing(ceremony, gateway_log, "reid-x", ["tok-a"])).status_code == 403

    refused = {e["target"]: e["outcome"] for e in _audit(server) if e["action"] == "reidentify.request" and e["outcome"].startswith("refused")}
    for request_id in ("reid-forged-1", "reid-forged-2", "reid-forged-3", "reid-forged-4", "reid-big-1", "reid-big-2"):
        assert request_id in refused
    assert "not_in_gateway_log" in refused["reid-forged-3"]


def test_evidence_from_a_later_checkpoint_is_accepted(server: Server, ceremony: Ceremony, gateway_log: GatewayLog) -> None:
    body = filing(ceremony, gateway_log, "reid-later-1", ["tok-a"])
    index = body["manifest"]["gateway_evidence"]["leaf_index"]
    for number in range(3):
        gateway_log.store.append(AuditEntry.now(actor="admin", role="admin", action="link.run", outcome="ok", target=f"run-{number}"))
    proof = gateway_log.store.inclusion_proof(index)
    body["manifest"]["gateway_evidence"] |= {"inclusion_proof": proof.to_json()["proof"],
                                             "checkpoint": gateway_log.store.latest_checkpoint()}
    assert server.client("tanaka").post("/api/v1/requests", json=resigned(gateway_log, body)).status_code == 201


def test_rejected_request_is_closed(server: Server, ceremony: Ceremony, gateway_log: GatewayLog) -> None:
    tanaka = server.client("tanaka")
    assert tanaka.post("/api/v1/requests", json=filing(ceremony, gateway_log, "reid-reject-1", ["tok-a"], approvals_required=1)).status_code == 201
    r = server.client("sato").post("/api/v1/requests/reid-reject-1/reject", json={"reason": "根拠が不十分"})
    assert r.json()["status"] == "rejected"
    assert server.client("ito").post("/api/v1/requests/reid-reject-1/approve").status_code == 409
    assert tanaka.post("/api/v1/requests/reid-reject-1/release").status_code == 409


def test_expired_session_is_refused(escrow_home: Path) -> None:
    server = start_server(escrow_home, session_minutes="0.02")
    try:
        token = server.login("kato")
        headers = {"Authorization": f"Bearer {token}"}
        assert server.client().get("/api/v1/requests", headers=headers).status_code == 200
        time.sleep(1.5)
        r = server.client().get("/api/v1/requests", headers=headers)
        assert r.status_code == 401 and "有効期限が切れています" in r.json()["detail"]
        assert server.client().get("/api/v1/requests", headers={"Authorization": "Bearer made-up"}).status_code == 401
        r = server.client().post("/api/v1/auth/login", json={"username": "kato", "password": PASSWORD + "x"})
        assert r.status_code == 401
    finally:
        server.stop()


def test_release_expires_after_the_window(escrow_home: Path, ceremony: Ceremony, gateway_log: GatewayLog) -> None:
    server = start_server(escrow_home, release_window_minutes="0.02")
    try:
        server.unseal(ceremony)
        tanaka = server.client("tanaka")
        assert tanaka.post("/api/v1/requests", json=filing(ceremony, gateway_log, "reid-late-1", ["tok-a"], approvals_required=1)).status_code == 201
        assert server.client("ito").post("/api/v1/requests/reid-late-1/approve").json()["status"] == "approved"
        time.sleep(1.5)
        r = tanaka.post("/api/v1/requests/reid-late-1/release")
        assert r.status_code == 410 and "期限が切れています" in r.json()["detail"]
        assert server.client("ito").get("/api/v1/requests/reid-late-1").json()["status"] == "expired"
    finally:
        server.stop()


def test_restart_seals_again(escrow_home: Path, ceremony: Ceremony) -> None:
    first = start_server(escrow_home)
    try:
        assert first.unseal(ceremony)["sealed"] is False
    finally:
        first.stop()
    second = start_server(escrow_home)
    try:
        assert second.client().get("/api/v1/status").json()["sealed"] is True
    finally:
        second.stop()
