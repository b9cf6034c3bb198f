"""Clerical review decisions bind later runs: non_link splits a matched pair, link merges a review pair; logged; bad input refused."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import Town
from sqlalchemy import select

from tests.support.gateway import Server, submit_town, wait_for_run
from gateway import models, review
from gateway.errors import GatewayError
from gateway.identity import User
from gateway.link import run_linkage
from synthetic.agents import SyntheticAgent
from linkage.match import FORBIDDEN, Constraints, ScoredPairs, enforce_constraints

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

CASEWORKER = User(2, "caseworker", "caseworker")


def _person_of(gw, run_id: int) -> dict[tuple[str, str], str]:
    a = models.assignments
    with gw.engine.connect() as conn:
        return {(r.source, r.token): r.person_id for r in conn.execute(select(a).where(a.c.run_id == run_id))}


def _a_matched_pair(persons: dict[tuple[str, str], str]) -> tuple[tuple[str, str], tuple[str, str]]:
    members: dict[str, list[tuple[str, str]]] = {}
    for record, pid in sorted(persons.items()):
        members.setdefault(pid, []).append(record)
    return next((m[0], m[1]) for m in members.values() if len(m) == 2)


@SQLITE
def test_non_link_splits_a_matched_pair_and_link_merges_a_review_pair(gw, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    submit_town(gw, town, agents)
    first = run_linkage(gw)
    persons = _person_of(gw, first["run_id"])
    a, b = _a_matched_pair(persons)
    assert persons[a] == persons[b]

    pairs = review.review_pairs(gw)
    assert pairs["total"] > 0
    # The queue holds uncertain linked pairs too (a decision could split them): take an unlinked one.
    shown = next(p for p in pairs["pairs"] if persons[(p["a"]["source"], p["a"]["token"])] != persons[(p["b"]["source"], p["b"]["token"])])
    assert shown["decision"] is None and all("text" in f and "field" in f for f in shown["fields"].values())
    assert any(t in shown["summary"] for t in ("カナ（姓）一致", "住所不明", "生年月日・性別"))
    ra, rb = (shown["a"]["source"], shown["a"]["token"]), (shown["b"]["source"], shown["b"]["token"])

    split = review.decide(gw, CASEWORKER, a, b, "non_link", "学年が違う別の兄弟と判断（家庭訪問で確認）")
    merged = review.decide_pair(gw, CASEWORKER, shown["id"], "link", "NPO の名簿は通称のカナで、住民記録と同一と確認")
    assert split["decision"] == "non_link" and merged["review_pair_id"] == shown["id"]
    logged = list(gw.audit.entries())[-2:]
    assert [(e.action, e.outcome, e.actor) for e in logged] == [("review.decide", "non_link", "caseworker"), ("review.decide", "link", "caseworker")]
    assert all("学年" not in e.outcome and "学年" not in e.target for e in logged)  # the reason stays out of the log

    second = run_linkage(gw)
    after = _person_of(gw, second["run_id"])
    assert after[a] != after[b]
    assert after[ra] == after[rb]
    assert second["splits"] >= 1
    now = review.review_pairs(gw)
    assert all({(p["a"]["source"], p["a"]["token"]), (p["b"]["source"], p["b"]["token"])} != {ra, rb} for p in now["pairs"])

    # The latest decision wins: linking the split pair again joins it in the next run.
    review.decide(gw, CASEWORKER, b, a, "link", "再確認の結果、同一人物")
    third = _person_of(gw, run_linkage(gw)["run_id"])
    assert third[a] == third[b]


def test_a_forbidden_pair_joined_through_a_third_record_is_split() -> None:
    # Records (0,0) and (1,0) are forbidden; both match (2,0) strongly, so the solver joins all three.
    pairs = ScoredPairs(np.array([0, 1, 0]), np.array([0, 0, 0]), np.array([2, 2, 1]), np.array([0, 0, 0]), None,  # type: ignore[arg-type]
                        np.array([30.0, 20.0, FORBIDDEN]))
    clusters = enforce_constraints([[(0, 0), (1, 0), (2, 0)]], pairs, Constraints(cannot_link=[((0, 0), (1, 0))]))
    assert sorted(clusters) == [[(0, 0), (2, 0)], [(1, 0)]]  # the record with the weaker evidence leaves
    forced = enforce_constraints([[(0, 0)], [(1, 0)]], pairs, Constraints(must_link=[((0, 0), (1, 0))]))
    assert forced == [[(0, 0), (1, 0)]]


@SQLITE
def test_bad_decisions_are_refused(gw, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    submit_town(gw, town, agents)
    persons = _person_of(gw, run_linkage(gw)["run_id"])
    a, b = _a_matched_pair(persons)
    same = [r for r in persons if r[0] == a[0] and r != a][0]
    cases = [
        ((a, b, "maybe", "理由"), "invalid_decision"),
        ((a, b, "link", "   "), "reason_required"),
        ((a, same, "non_link", "理由"), "same_source"),
        ((a, ("school", "no-such-token"), "link", "理由"), "record_not_found"),
    ]
    for args, code in cases:
        with pytest.raises(GatewayError) as refused:
            review.decide(gw, CASEWORKER, *args)
        assert refused.value.code == code
    with pytest.raises(GatewayError) as gone:
        review.decide_pair(gw, CASEWORKER, 999_999, "link", "理由")
    assert gone.value.status == 404
    with gw.engine.connect() as conn:
        assert conn.execute(select(models.review_decisions)).first() is None


@SQLITE
def test_the_routes_decide_and_check_the_policy(server: Server, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    with server.client() as c:
        for source, agent in agents.items():
            assert c.post("/api/v1/submissions", content=agent.submit(source, town.sources[source]),
                          headers={"Content-Type": "application/x-ndjson"}).status_code == 200
    run = wait_for_run(server)
    with server.client("caseworker") as c:
        listing = c.get("/api/v1/review/pairs").json()
        pair = listing["pairs"][0]
        # the older path is an alias: the same answer, page by page, in the review queue's order
        for params in ({}, {"limit": 2, "offset": 1}):
            assert c.get("/api/v1/review-pairs", params=params).json() == c.get("/api/v1/review/pairs", params=params).json()
        assert listing["pairs"] and "decision" in listing["pairs"][0]
        r = c.post(f"/api/v1/review/{pair['id']}/decision", json={"decision": "link", "reason": "同一と確認"})
        assert r.status_code == 200, r.text
        r = c.post(f"/api/v1/review/{pair['id']}/decision", json={"decision": "link"})
        assert r.status_code == 422
        assert c.get("/api/v1/review/decisions").json()["decisions"][0]["reason"] == "同一と確認"
    with server.client("analyst") as c:
        r = c.post(f"/api/v1/review/{pair['id']}/decision", json={"decision": "non_link", "reason": "x"})
        assert r.status_code == 403 and "権限" in r.json()["detail"]
    with server.client("admin") as c:
        assert c.post("/api/v1/runs").status_code in (200, 202)
    wait_for_run(server, run["id"])
    with server.client("caseworker") as c:
        a = c.get(f"/api/v1/records/{pair['a']['source']}/{pair['a']['token']}").json()["person_id"]
        b = c.get(f"/api/v1/records/{pair['b']['source']}/{pair['b']['token']}").json()["person_id"]
    assert a == b
