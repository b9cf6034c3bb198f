"""Pooled evaluation: two towns share only suppressed aggregate counts with the prefecture's gateway over the
federation channel (real `tsunagu gateway serve`); the prefecture sees the sums, never a row about a child."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx

from tests.support.federation import PASSWORD, Town, cli
from gateway import screening, support
from gateway.core import Gateway
from gateway.identity import User
from gateway.ingest import ingest
from gateway.link import run_linkage
from synthetic.agents import synthetic_agents
from keys.linkage_secret import generate_linkage_secret
from synthetic import generate_town

PREFECTURE, TOWN_A, TOWN_B = "080004", "082201", "082210"
CASEWORKER = User(2, "caseworker", "caseworker")


def _town(root: Path, code: str, seed: int) -> tuple[Town, dict]:
    """A town's gateway with a linked generated town and judgements recorded for part of its list."""
    town = Town(code, root / code)
    data = generate_town(n_children=250, seed=seed)
    agents = synthetic_agents(sorted(data.sources), root / f"agents-{code}")
    town.cli("gateway", "init", "--linkage-key-id", next(iter(agents.values())).linkage.key_id)
    for source, agent in agents.items():
        town.cli("gateway", "agent", "register", "--agent-public", str(agent.public_file), "--network", agent.network, "--source", source)
    gw = Gateway.open(town.home)
    try:
        for source, agent in agents.items():
            assert ingest(gw, agent.submit(source, data.sources[source]), "import").status == "accepted"
        run_linkage(gw)
        entries = screening.screen(gw, CASEWORKER)["entries"]
        judged = entries[:12]
        for i, e in enumerate(judged):
            assessment = "needs_support" if i % 2 == 0 else "not_needed"
            support.open_case(gw, CASEWORKER, e["person_id"], assessment=assessment, status="closed",
                              not_needed_reason="no_concern" if assessment == "not_needed" else None,
                              supports=["counselling"] if assessment == "needs_support" else [], difficulties=["poverty"])
        persons = [e["person_id"] for e in entries]
        by_rule: dict[str, int] = {}
        for e in entries:
            for f in e["flags"]:
                by_rule[f["rule_id"]] = by_rule.get(f["rule_id"], 0) + 1
    finally:
        gw.close()
    return town, {"flagged": len(entries), "checked": len(judged), "needs_support": sum(i % 2 == 0 for i in range(len(judged))),
                  "persons": persons, "by_rule": by_rule}


def test_two_towns_pool_counts_and_the_prefecture_sees_sums_never_rows(tmp_path: Path) -> None:
    federation = generate_linkage_secret()
    a, expected_a = _town(tmp_path, TOWN_A, 21)
    b, expected_b = _town(tmp_path, TOWN_B, 22)
    pref = Town(PREFECTURE, tmp_path / PREFECTURE)
    pref.cli("gateway", "init", "--linkage-key-id", federation.key_id)
    pref.cli("gateway", "user", "add", "--username", "analyst", "--role", "analyst", "--password-stdin", input=PASSWORD + "\n")
    for t in (a, b, pref):
        t.cli("federation", "init", "--code", t.code, "--name", f"自治体{t.code}", "--contact", "こども家庭センター",
              "--federation-key-id", federation.key_id, "--purpose", "early_support")
        t.cli("federation", "identity", "--out", str(tmp_path / f"{t.code}.json"), "--url", t.url)
    for t in (a, b):
        t.cli("federation", "peer", "add", "--code", PREFECTURE, "--identity", str(tmp_path / f"{PREFECTURE}.json"))
        pref.cli("federation", "peer", "add", "--code", t.code, "--identity", str(tmp_path / f"{t.code}.json"))
    pref.start()
    try:
        for t in (a, b):
            assert "送りました" in t.cli("evaluate", "share", "--prefecture", PREFECTURE)
        with httpx.Client(base_url=pref.url, timeout=300) as c:
            token = c.post("/api/v1/auth/login", json={"username": "analyst", "password": PASSWORD}).json()["access_token"]
            pooled = c.get("/api/v1/evaluation/pooled", headers={"Authorization": f"Bearer {token}"}).json()
            # a message from an unknown town, or replayed, is refused
            stranger = httpx.post(f"{pref.url}/api/v1/federation/peer/pooled", content=b'{"message": {}, "signature": ""}')
            assert stranger.status_code in (400, 403)
    finally:
        pref.stop()

    assert pooled["towns"] == [TOWN_A, TOWN_B]
    total = pooled["total"]
    for key in ("flagged", "checked", "needs_support"):
        assert total[key] == {"sum": expected_a[key] + expected_b[key], "suppressed": 0}, key
    assert total["precision"] == (expected_a["needs_support"] + expected_b["needs_support"]) / (expected_a["checked"] + expected_b["checked"])
    # per rule: a town's count of 1–4 is suppressed (counted as such, not summed); the others are summed
    for rule, row in pooled["rules"].items():
        counts = [expected_a["by_rule"].get(rule, 0), expected_b["by_rule"].get(rule, 0)]
        assert row["flagged"] == {"sum": sum(n for n in counts if n == 0 or n >= 5),
                                  "suppressed": sum(0 < n < 5 for n in counts)}, rule

    # the prefecture holds counts only: no person id, no frozen list, no case
    db = pref.home / "gateway.db"
    raw = db.read_bytes() + b"".join(p.read_bytes() for p in (pref.home).rglob("*.db-wal"))
    for pid in expected_a["persons"] + expected_b["persons"]:
        assert pid.encode() not in raw
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM screening_flags").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM support_cases").fetchone() == (0,)
        stored = [json.loads(c) for (c,) in conn.execute("SELECT counts FROM pooled_reports")]
    assert len(stored) == 2
    leaves = json.dumps(stored)
    assert all(pid not in leaves for pid in expected_a["persons"] + expected_b["persons"])
