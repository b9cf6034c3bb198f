"""End to end: screen a generated town on the real server, record judgements and support for part of the list through
the API, then check `tsunagu evaluate report`'s funnel and per-rule precision against counts computed here."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.support.gateway import Server, cli, wait_for_run
from synthetic import Town
from synthetic.agents import SyntheticAgent

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _judge(rank: int) -> tuple[str, list[str], list[str], str | None]:
    """A deterministic stand-in for staff: by rank, so the test knows every answer."""
    if rank % 3 == 0:
        return "not_needed", [], [], "no_concern"
    if rank % 3 == 1:
        return "needs_support", ["school_refusal"], ["counselling"] if rank % 2 else [], None
    return "watch", ["poverty"], [], None


def test_screen_record_and_evaluate(server: Server, town: Town, agents: dict[str, SyntheticAgent], tmp_path: Path) -> None:
    for source, agent in agents.items():
        r = httpx.post(f"{server.base_url}/api/v1/submissions", content=agent.submit(source, town.sources[source]),
                       headers={"Content-Type": "application/x-ndjson"}, timeout=300)
        assert r.status_code == 200, r.text
    wait_for_run(server)
    with server.client("caseworker") as c, server.client("analyst") as analyst, server.client("admin") as admin:
        listing = c.get("/api/v1/screening").json()
        entries = listing["entries"]
        assert len(entries) >= 12, "the generated town should flag enough children for the test"
        judged = entries[: len(entries) * 2 // 3]  # staff got through two thirds of the list
        expected: dict[str, dict[str, int]] = {}
        for e in judged:
            assessment, difficulties, supports, reason = _judge(e["rank"])
            opened = c.post("/api/v1/support/cases", json={"person_id": e["person_id"], "status": "checking"})
            assert opened.status_code == 200, opened.text
            case = opened.json()
            assert case["origin"] == "screening" and set(case["rules"]) == {f["rule_id"] for f in e["flags"]}
            changed = c.patch(f"/api/v1/support/cases/{case['id']}", json={
                "assessment": assessment, "difficulties": difficulties, "supports": supports, "not_needed_reason": reason,
                "status": "supporting" if supports else "closed", "department": "kodomo_center", "version": case["version"]})
            assert changed.status_code == 200, changed.text
            for f in e["flags"]:
                row = expected.setdefault(f["rule_id"], {"checked": 0, "needs": 0, "supported": 0})
                row["checked"] += 1
                row["needs"] += assessment == "needs_support"
                row["supported"] += bool(supports)
        flagged_by_rule: dict[str, int] = {}
        for e in entries:
            for f in e["flags"]:
                flagged_by_rule[f["rule_id"]] = flagged_by_rule.get(f["rule_id"], 0) + 1

        # refused: a note that carries a phone number, an unknown code, and a role without the permission
        case_id = c.get("/api/v1/support/cases").json()["cases"][0]["id"]
        refused = c.patch(f"/api/v1/support/cases/{case_id}", json={"note": "母の携帯 090-1234-5678"})
        assert refused.status_code == 422 and refused.json()["error"] == "note_refused"
        assert c.patch(f"/api/v1/support/cases/{case_id}", json={"supports": ["cash"]}).json()["error"] == "unknown_supports"
        assert analyst.post("/api/v1/support/cases", json={"person_id": entries[0]["person_id"]}).status_code == 403
        assert admin.get("/api/v1/support/cases").status_code == 403
        assert httpx.get(f"{server.base_url}/api/v1/support/cases").status_code == 401

        api = analyst.get("/api/v1/evaluation", params={"period": "snapshot"}).json()

    out = tmp_path / "report"
    printed = cli(["evaluate", "report", "--home", str(server.home.path), "--out", str(out), "--period", "snapshot"])
    assert "抽出" in printed and "適合率" in printed
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["total"] == api["total"]
    total = report["total"]
    assert total["flagged"] == len(entries)
    assert total["checked"] == len(judged)
    assert total["needs_support"] == sum(_judge(e["rank"])[0] == "needs_support" for e in judged)
    assert total["supported"] == sum(bool(_judge(e["rank"])[2]) for e in judged)
    assert total["not_needed"] == sum(_judge(e["rank"])[0] == "not_needed" for e in judged)
    by_rule = {r["key"]: r for r in report["by_rule"]}
    for rule, counts in expected.items():
        row = by_rule[rule]
        assert (row["flagged"], row["checked"], row["needs_support"], row["supported"]) == (
            flagged_by_rule[rule], counts["checked"], counts["needs"], counts["supported"])
        assert row["precision"] == pytest.approx(counts["needs"] / counts["checked"], abs=1e-4)
    with (out / "funnel_by_rule.csv").open(encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["区分"] for r in rows} == {r["label"] for r in report["by_rule"]}
    for name in ("funnel", "precision_by_rule", "capacity_curve", "items_by_difficulty", "human_check", "risk_index"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["human_check"]["not_needed"] == total["not_needed"]
    assert report["human_check"]["reasons"] == [{"code": "no_concern", "label": "面談等で懸念なしと確認", "count": total["not_needed"]}]

    # every change is in the audit log; the database holds codes, never the refused note
    with sqlite3.connect(server.home.path / "gateway.db") as db:
        actions = [json.loads(body).get("action") for (body,) in db.execute("SELECT body FROM audit_entries")]
        notes = [n for (n,) in db.execute("SELECT note FROM support_cases")]
    assert "090" not in "".join(notes)
    assert actions.count("support.open") == len(judged) and actions.count("support.update") == len(judged)
    assert actions.count("screening.snapshot") == 1
