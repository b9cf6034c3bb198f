"""Ingest in-process: unusable records are refused one by one, snapshots replace and keep history, the audit log records it."""

from __future__ import annotations

import json

from synthetic import Town
from sqlalchemy import select

from gateway import models
from gateway.ingest import ingest
from tests.support.gateway import cli
from synthetic.agents import SyntheticAgent
from keys.submission import read_submission, write_submission


def test_unusable_records_are_refused_by_token(gw, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    agent = agents["npo"]
    sub = read_submission(agent.submit("npo", town.sources["npo"]))
    records = sub.records
    records[1].clk = records[1].clk[:-1]
    records[2].token = records[3].token
    records[4].blocks = records[4].blocks[:2]
    manifest = {k: v for k, v in sub.manifest.items() if k not in ("format", "version", "record_count", "content_sha256")}
    manifest["sequence"] = agent.sequence = agent.sequence + 1
    result = ingest(gw, write_submission(manifest, records, agent.keys.signing_key), "import")
    assert result.status == "accepted" and result.accepted == len(records) - 3
    reasons = {r["token"]: r["reason"] for r in result.refused}
    assert set(reasons) == {records[1].token, records[3].token, records[4].token}
    assert "208" in reasons[records[1].token] and "重複" in reasons[records[3].token]


def test_snapshots_replace_and_keep_history(gw, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    agent = agents["school"]
    rows = [dict(r) for r in town.sources["school"]]
    first = ingest(gw, agent.submit("school", rows), "import")
    rows[0]["absence_days"] = "777"
    second = ingest(gw, agent.submit("school", rows[:-1]), "import")
    r, h = models.records, models.record_history
    with gw.engine.connect() as conn:
        current = conn.execute(select(r.c.token, r.c.submission_id, r.c.first_submission_id, r.c.attributes)).all()
        history = conn.execute(select(h.c.token, h.c.submission_id, h.c.status, h.c.attributes)).all()
    assert len(current) == len(rows) - 1
    assert {c.submission_id for c in current} == {second.submission_id}
    assert {c.first_submission_id for c in current} == {first.submission_id}
    assert len([x for x in history if x.status == "present"]) == 2 * len(rows) - 1
    deleted = [x for x in history if x.status == "deleted"]
    assert len(deleted) == 1 and deleted[0].submission_id == second.submission_id
    changed = {x.submission_id: json.loads(x.attributes) for x in history if x.status == "present"
               and x.token == next(c.token for c in current if json.loads(c.attributes).get("absence_days") == "777")}
    assert changed[second.submission_id]["absence_days"] == "777"
    assert changed[first.submission_id]["absence_days"] != "777"
    actions = [(e.action, e.target) for e in gw.audit.entries()]
    assert ("submission.accept", f"school#{second.submission_id}") in actions


def test_the_audit_log_exports_and_verifies_offline(gw, home, town: Town, agents: dict[str, SyntheticAgent], tmp_path) -> None:
    ingest(gw, agents["npo"].submit("npo", town.sources["npo"]), "import")
    export = tmp_path / "audit.jsonl"
    out = home.cli("audit-export", "--out", str(export))
    vkey = out.split("検証鍵: ")[1].strip()
    (tmp_path / "gateway.vkey").write_text(vkey, encoding="utf-8")
    # No witness is configured for this gateway: an auditor's own witness cosigns the export offline.
    auditor = tmp_path / "auditor"
    cli(["audit", "witness", "init", "--home", str(auditor), "--name", "kansa.example/witness"])
    cli(["audit", "witness", "trust", "--home", str(auditor), "--origin", gw.audit.origin, "--log-key", str(tmp_path / "gateway.vkey")])
    cli(["audit", "witness", "cosign", "--home", str(auditor), str(export)])
    verified = cli(["audit", "verify", str(export), "--public-key", str(tmp_path / "gateway.vkey"),
                    "--witness-key", str(auditor / "witness" / "witness-verifier.txt")])
    assert "検証成功" in verified
    actions = [json.loads(line).get("entry", {}).get("action") for line in export.read_text(encoding="utf-8").splitlines()]
    assert {"user.add", "agent.register", "submission.accept"} <= set(actions)
