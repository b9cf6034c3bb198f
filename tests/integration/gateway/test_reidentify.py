"""The gateway's part of re-identification: checked against the policy, logged before the filing exists, every refusal logged.

The escrow's own checks (evidence, approvals by others, one release) are
exercised through the whole path in ``test_reidentify_end_to_end.py``.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from importlib import resources

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from synthetic import Town
from sqlalchemy import select

from escrow.errors import EscrowError
from escrow.evidence import REQUEST_ACTION, GatewayEvidence, verify_evidence
from tests.support.gateway import submit_town
from gateway import models, reidentify
from gateway.errors import GatewayError
from gateway.identity import User
from gateway.link import run_linkage
from synthetic.agents import SyntheticAgent
from transparency.tlog_checkpoint import Signer
from keys.envelope import EnvelopeSignatureError
from keys.filing import open_filing
from policy import load_policy

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
TANAKA = User(2, "tanaka", "caseworker")
WHY = "要保護児童対策地域協議会の個別ケース検討のため、世帯を特定して家庭訪問する必要がある。"


def _linked_person(gw, records: int = 2) -> str:
    a = models.assignments
    with gw.engine.connect() as conn:
        rows = conn.execute(select(a.c.person_id, a.c.source, a.c.token)).all()
    per: dict[str, int] = {}
    for r in rows:
        per[r.person_id] = per.get(r.person_id, 0) + 1
    return sorted(p for p, n in per.items() if n == records)[0]


def _evidence(package: dict) -> GatewayEvidence:
    e = package["gateway_evidence"]
    return GatewayEvidence(e["entry"], e["leaf_index"], e["inclusion_proof"], e["checkpoint"])


def _expected(package: dict) -> dict[str, str]:
    return {"action": REQUEST_ACTION, "actor": package["requester"], "target": package["request_id"],
            "purpose": package["purpose"], "case_ref": package["case_ref"]}


@SQLITE
def test_the_filing_holds_the_persons_sealed_records_and_verifiable_evidence(gw, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    submit_town(gw, town, agents)
    run_linkage(gw)
    person = _linked_person(gw)
    size_before = gw.audit.size()
    answer = reidentify.request(gw, TANAKA, person, "early_support", "こども家庭センター-2026-101", WHY)

    assert set(answer) == {"request_id", "person_id", "filing"} and answer["person_id"] == person
    # The filing is an envelope signed by the gateway's key: read with that key only, and not once edited.
    package = open_filing(answer["filing"], gw.signer.verifier.public_key).model_dump(mode="json")
    assert package["request_id"] == answer["request_id"] and answer["filing"]["manifest"]["kind"] == "reidentification-filing"
    with pytest.raises(EnvelopeSignatureError):
        open_filing(answer["filing"], Ed25519PrivateKey.generate().public_key())
    tampered = json.loads(json.dumps(answer["filing"]))
    tampered["manifest"]["justification"] += "（追記）"
    with pytest.raises(EnvelopeSignatureError, match="書き換えられて"):
        open_filing(tampered, gw.signer.verifier.public_key)
    assert (package["requester"], package["purpose"], package["legal_basis"], package["max_records"], package["approvals_required"]) == \
        ("tanaka", "early_support", "61", 20, 1)
    a, r = models.assignments, models.records
    with gw.engine.connect() as conn:
        stored = {(x.source, x.token): x.sealed for x in conn.execute(
            select(r.c.source, r.c.token, r.c.sealed).join(a, (a.c.source == r.c.source) & (a.c.token == r.c.token))
            .where(a.c.person_id == person))}
    assert {(x["batch_header"]["source"], x["token"]): base64.b64decode(x["ciphertext"]) for x in package["records"]} == stored
    assert all(x["batch_header"]["format"] == "tsunagu/sealed-batch" for x in package["records"])

    # Logged before anything was handed out: the entry is the log's last, and the escrow's check accepts it.
    assert gw.audit.size() == size_before + 1
    entry = list(gw.audit.entries())[-1]
    assert entry.to_json() == package["gateway_evidence"]["entry"]
    assert (entry.action, entry.actor, entry.role, entry.target, entry.legal_basis) == \
        ("reidentify.request", "tanaka", "caseworker", package["request_id"], "61")
    assert entry.outcome.startswith("accepted: ") and f"person={person} records=2 " in entry.outcome
    verify_evidence(_evidence(package), gw.signer.verifier, _expected(package))

    # An edited entry, another request id, or a checkpoint signed by another key: the escrow's check refuses.
    edited = json.loads(json.dumps(package))
    edited["gateway_evidence"]["entry"]["case_ref"] = "別の案件"
    edited["case_ref"] = "別の案件"
    with pytest.raises(EscrowError, match="含まれていません"):
        verify_evidence(_evidence(edited), gw.signer.verifier, _expected(edited))
    with pytest.raises(EscrowError, match="一致しません"):
        verify_evidence(_evidence(package), gw.signer.verifier, {**_expected(package), "target": "reid-forged"})
    with pytest.raises(EscrowError, match="チェックポイント"):
        verify_evidence(_evidence(package), Signer("tsunagu-gateway", Ed25519PrivateKey.generate()).verifier, _expected(package))


@SQLITE
def test_refusals_are_explained_and_logged(gw, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    submit_town(gw, town, agents)
    run_linkage(gw)
    person = _linked_person(gw)
    cases = [
        (dict(purpose="curiosity"), "purpose_not_usable", "ポリシーにありません"),
        (dict(case_ref="  "), "case_ref_required", "案件番号"),
        (dict(case_ref="行1\n行2"), "case_ref_invalid", "改行"),
        (dict(justification=""), "justification_required", "理由"),
        (dict(person="Pnobody"), "person_not_found", "Pnobody"),
        (dict(purpose="child_protection", today=datetime(2027, 4, 1, tzinfo=timezone.utc)), "purpose_not_usable", "利用期限"),
    ]
    for overrides, code, words in cases:
        args = {"person": person, "purpose": "early_support", "case_ref": "要対協-2026-015", "justification": WHY, **overrides}
        size = gw.audit.size()
        with pytest.raises(GatewayError) as refused:
            reidentify.request(gw, TANAKA, args["person"], args["purpose"], args["case_ref"], args["justification"], today=args.get("today"))
        assert refused.value.code == code and words in refused.value.detail and 400 <= refused.value.status < 500
        assert gw.audit.size() == size + 1
        logged = list(gw.audit.entries())[-1]
        assert (logged.action, logged.actor, logged.outcome) == ("reidentify.request", "tanaka", f"refused: {code}")

    with pytest.raises(GatewayError) as role:
        reidentify.request(gw, User(3, "analyst", "analyst"), person, "early_support", "要対協-2026-015", WHY)
    assert role.value.status == 403 and list(gw.audit.entries())[-1].outcome == "refused: forbidden"

    # Beyond the purpose's record limit: refused, and nothing was handed out.
    policy_file = gw.settings.home / "policy.toml"
    policy_file.write_text(resources.files("policy").joinpath("default_policy.toml").read_text(encoding="utf-8")
                           .replace("max_records_per_request = 20", "max_records_per_request = 1"), encoding="utf-8")
    gw.policy = load_policy(policy_file)
    with pytest.raises(GatewayError) as limit:
        reidentify.request(gw, TANAKA, person, "early_support", "要対協-2026-015", WHY)
    assert limit.value.code == "too_many_records" and "上限 1 件" in limit.value.detail
    assert list(gw.audit.entries())[-1].outcome == "refused: too_many_records"
