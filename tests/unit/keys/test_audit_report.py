"""Auditors' report: requests joined across the gateway's and the escrow's logs, and each kind of anomaly."""

from __future__ import annotations

import json
from datetime import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from keys import audit
from keys.audit import AuditEntry
from keys.audit_report import AnomalyRules, anomalies, counts, read_entries, requests_report
from service.audit_store import open_log
from service.db import sqlite_engine
from transparency.tlog_checkpoint import Signer
from tsunagu.cli import app

# 2026-11-24 is a Tuesday. Times are UTC: 01:00Z = 10:00 JST.
WORKDAY = "2026-11-24T01:00:00.000+00:00"


RECORDS, WHY = "a" * 64, "b" * 64  # the hashes over the records and the justification, as both logs carry them
ACCEPTED = f"accepted: person=P1 records=2 records_sha256={RECORDS} justification_sha256={WHY} approvals=1 max_records=20"


def _g(request_id: str, actor: str = "tanaka", at: str = WORKDAY, case_ref: str = "要対協-1", outcome: str = ACCEPTED) -> AuditEntry:
    return AuditEntry(time=at, actor=actor, role="caseworker", action="reidentify.request", target=request_id,
                      purpose="early_support", legal_basis="61", case_ref=case_ref, outcome=outcome)


def _e(request_id: str, actor: str, action: str, outcome: str, at: str = WORKDAY) -> AuditEntry:
    """An escrow entry; like the escrow's own, it carries the request's purpose, legal basis and case reference."""
    return AuditEntry(time=at, actor=actor, role="x", action=action, target=request_id, outcome=outcome,
                      purpose="early_support", legal_basis="61", case_ref="要対協-1")


FILED = f"filed: 2 records, 1 approvals required, gateway log size 9, records_sha256={RECORDS}, justification_sha256={WHY}"
RELEASED = f"released: 2 records, records_sha256={RECORDS}"


def test_requests_are_joined_with_their_outcome() -> None:
    gateway = [_g("r1"), _g("r2"), _g("r3"), _g("r4", outcome="refused: too_many_records"), _g("r5"),
               AuditEntry(time=WORKDAY, actor="x", role="admin", action="user.add", outcome="ok")]
    escrow = [
        _e("r1", "tanaka", "reidentify.request", FILED), _e("r1", "sato", "reidentify.approve", "approved"),
        _e("r1", "tanaka", "reidentify.release", RELEASED),
        _e("r2", "tanaka", "reidentify.request", FILED), _e("r2", "sato", "reidentify.reject", "rejected"),
        _e("r3", "tanaka", "reidentify.request", FILED), _e("r3", "tanaka", "reidentify.approve", "refused: own_request: …"),
        _e("r9", "suzuki", "reidentify.request", FILED),
    ]
    rows = {r.request_id: r for r in requests_report(gateway, escrow)}
    assert {k: r.outcome for k, r in rows.items()} == {"r1": "released", "r2": "rejected", "r3": "pending", "r4": "refused_gateway",
                                                       "r5": "not_filed", "r9": "not_in_gateway_log"}
    assert rows["r1"].approvals == [{"approver": "sato", "time": WORKDAY}] and rows["r1"].released_at == WORKDAY
    assert rows["r3"].refusals[0]["outcome"].startswith("refused: own_request")
    assert (rows["r1"].purpose, rows["r1"].legal_basis, rows["r1"].case_ref) == ("early_support", "61", "要対協-1")
    assert counts(list(rows.values()))["released"] == 1
    # Without the escrow's log nobody can say a request was never filed there: only what the gateway itself decided.
    alone = {r.request_id: r.outcome for r in requests_report(gateway, None)}
    assert alone == {"r1": "escrow_unknown", "r2": "escrow_unknown", "r3": "escrow_unknown", "r4": "refused_gateway",
                     "r5": "escrow_unknown"}


def test_each_kind_of_anomaly_is_found_and_thresholds_are_configurable() -> None:
    saturday = "2026-11-28T01:00:00.000+00:00"
    late = "2026-11-24T10:00:00.000+00:00"  # 19:00 JST
    gateway = [_g("a1", case_ref=""), _g("a2", at=saturday), _g("a3", at=late)]
    gateway += [_g(f"m{i}", actor="suzuki", at=f"2026-11-2{4 + i % 3}T0{1 + i % 5}:00:00.000+00:00") for i in range(6)]
    escrow = []
    for i in range(3):
        escrow += [_e(f"m{i}", "suzuki", "reidentify.request", FILED), _e(f"m{i}", "ito", "reidentify.approve", "approved")]
    found = anomalies(requests_report(gateway, escrow))
    kinds = {(a.kind, a.request_ids[0] if len(a.request_ids) == 1 else a.actor) for a in found}
    assert ("no_case_ref", "a1") in kinds and ("off_hours", "a2") in kinds and ("off_hours", "a3") in kinds
    assert ("many_requests", "suzuki") in kinds and ("repeated_pair", "suzuki") in kinds
    assert not any(a.kind == "off_hours" and a.request_ids == ("m0",) for a in found)
    assert all(a.reason for a in found)

    relaxed = anomalies(requests_report(gateway, escrow), AnomalyRules(time(0, 0), time(23, 59), max_requests=10, pair_repeats=4))
    assert {a.kind for a in relaxed} == {"no_case_ref", "off_hours"}  # only Saturday is still outside a weekday


def _export(tmp_path: Path, name: str, entries: list[AuditEntry]) -> tuple[Path, Path]:
    signer = Signer(f"tsunagu-{name}", Ed25519PrivateKey.generate())
    store = open_log(sqlite_engine(str(tmp_path / f"{name}.db")), signer, f"tsunagu.{name}/000000")
    for entry in entries:
        store.append(entry)
    lines = audit.export_lines(store.origin, signer.verifier.vkey(), store.entries(), store.checkpoints(), store.size())
    path, key = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.key"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    key.write_text(signer.verifier.vkey() + "\n", encoding="utf-8")
    return path, key


def test_cli_reports_requests_and_anomalies_from_verified_exports(tmp_path: Path) -> None:
    g, gk = _export(tmp_path, "gateway", [_g("r1"), _g("r2", case_ref="")])
    e, ek = _export(tmp_path, "escrow", [_e("r1", "tanaka", "reidentify.request", FILED), _e("r1", "sato", "reidentify.approve", "approved"),
                                          _e("r1", "tanaka", "reidentify.release", RELEASED)])
    runner = CliRunner()
    listed = runner.invoke(app, ["audit", "requests", "--gateway-export", str(g), "--escrow-export", str(e),
                                 "--gateway-key", str(gk), "--escrow-key", str(ek)])
    assert listed.exit_code == 0, listed.output
    assert "r1" in listed.output and "開示済み" in listed.output and "sato" in listed.output and "申請 2 件" in listed.output

    flagged = runner.invoke(app, ["audit", "anomalies", "--gateway-export", str(g), "--escrow-export", str(e), "--json"])
    assert flagged.exit_code == 1
    assert [a["kind"] for a in json.loads(flagged.output[flagged.output.index("["):])] == ["no_case_ref"]

    # A rewritten escrow log does not verify: no report from it.
    lines = e.read_text(encoding="utf-8").splitlines()
    entry = json.loads(lines[2])
    entry["entry"]["actor"] = "someone-else"
    lines[2] = json.dumps(entry, ensure_ascii=False)
    e.write_text("\n".join(lines) + "\n", encoding="utf-8")
    refused = runner.invoke(app, ["audit", "requests", "--gateway-export", str(g), "--escrow-export", str(e)])
    assert refused.exit_code != 0 and "エスクローの監査ログを検証できません" in str(refused.exception)
    assert read_entries(g.read_text(encoding="utf-8").splitlines())[0].target == "r1"


def test_an_escrow_acting_beyond_the_gateways_entry_is_an_anomaly() -> None:
    """What an honest escrow refuses (tests/integration/escrow/test_insider.py) is flagged when an altered escrow's log shows it anyway."""
    gateway = [_g("ok"), _g("refused", outcome="refused: person_not_found"), _g("more"), _g("basis"), _g("why"),
               _g("old", outcome="requested: person=P1 records=2"), _g("wider")]
    other = "c" * 64
    escrow = [
        _e("ok", "tanaka", "reidentify.request", FILED), _e("ok", "tanaka", "reidentify.release", RELEASED),
        # a refused gateway entry taken as evidence, and released
        _e("refused", "tanaka", "reidentify.request", FILED), _e("refused", "tanaka", "reidentify.release", "released: 4 records"),
        # more records than the gateway logged (carried from a bundle)
        _e("more", "tanaka", "reidentify.request", FILED.replace("filed: 2 records", "filed: 5 records").replace(RECORDS, other)),
        _e("more", "tanaka", "reidentify.release", f"released: 5 records, records_sha256={other}"),
        # a made-up legal basis, a different justification
        AuditEntry(time=WORKDAY, actor="tanaka", role="caseworker", action="reidentify.request", target="basis",
                   purpose="early_support", legal_basis="69-2-3", case_ref="要対協-1", outcome=FILED),
        _e("why", "tanaka", "reidentify.request", FILED.replace(WHY, other)),
        _e("old", "tanaka", "reidentify.request", FILED),
        _e("wider", "tanaka", "reidentify.request", FILED), _e("wider", "tanaka", "reidentify.release", "released: 3 records"),
    ]
    rows = {r.request_id: r for r in requests_report(gateway, escrow)}
    assert rows["refused"].outcome == "released"  # what the escrow did, not "refused at the gateway"
    found = {}
    for a in anomalies(list(rows.values()), AnomalyRules(max_requests=100)):  # seven requests of one user are not the point here
        found.setdefault(a.request_ids[0], set()).add(a.kind)
    assert "ok" not in found
    assert found["refused"] == {"gateway_refused_but_acted"}
    assert found["more"] == {"binding_mismatch"} and found["wider"] == {"binding_mismatch"}
    assert found["basis"] == {"binding_mismatch"} and found["why"] == {"binding_mismatch"}
    assert found["old"] == {"unbound_gateway_entry"}
    reasons = [a.reason for a in anomalies(list(rows.values())) if a.request_ids == ("basis",)]
    assert any("法的根拠（69-2-3）" in reason for reason in reasons)
