"""The review screen's service layer: why a pair is in review, the weight each field adds (waterfall), records grouped
by what they share, rivals settled by one "same" decision; and the child's history with unchanged resubmissions folded."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import insert, select

from tests.support.gateway import submit_town
from gateway import casework, models, review
from gateway.identity import User
from gateway.link import run_linkage
from linkage.match import MATCH_THRESHOLD, REVIEW_THRESHOLD
from synthetic import Town

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
CASEWORKER = User(2, "caseworker", "caseworker")


@SQLITE
def test_groups_reasons_waterfall_and_rivals_settled(gw, town: Town, agents) -> None:
    submit_town(gw, town, agents)
    run = run_linkage(gw)
    listed = review.review_groups(gw, limit=1000)
    assert listed["total_pairs"] > 0 and listed["undecided_pairs"] == listed["total_pairs"]
    pair = listed["groups"][0]["pairs"][0]
    assert all("weight" in f for f in pair["fields"].values())  # stored by the run
    steps = pair["waterfall"]
    assert steps[-1]["end"] == pytest.approx(pair["weight"], abs=0.01)  # the steps add up to the pair's weight
    assert any(s["added"] for s in steps) and pair["a"]["person_id"].startswith("P")
    expected = "別の記録があります" if pair["weight"] >= MATCH_THRESHOLD else f"確認にまわす基準 {REVIEW_THRESHOLD:g} 以上"
    assert expected in pair["reason"]

    # A rival: the same record A paired with another record of B's source.
    a, b = (pair["a"]["source"], pair["a"]["token"]), (pair["b"]["source"], pair["b"]["token"])
    r = models.records
    with gw.engine.begin() as conn:
        other = conn.execute(select(r.c.token).where(r.c.source == b[0], r.c.token != b[1]).limit(1)).scalar_one()
        fields = json.dumps({k: {kk: vv for kk, vv in f.items() if kk in ("level", "label", "weight")} for k, f in pair["fields"].items()},
                            ensure_ascii=False)
        rival_id = conn.execute(insert(models.review_pairs).values(run_id=run["run_id"], source_a=a[0], token_a=a[1], source_b=b[0],
                                                                    token_b=other, weight=pair["weight"] - 1, fields=fields)).inserted_primary_key[0]
    grouped = next(g for g in review.review_groups(gw, limit=1000)["groups"] if any(p["id"] == rival_id for p in g["pairs"]))
    assert grouped["rivals"] and {p["id"] for p in grouped["pairs"]} >= {pair["id"], rival_id}
    assert rival_id in next(p for p in grouped["pairs"] if p["id"] == pair["id"])["rivals"]

    settled = review.decide_group(gw, CASEWORKER, pair["id"], "link", "学校と保健師の記録で同じ子と確認")
    assert [(d["review_pair_id"], d["decision"]) for d in settled] == [(pair["id"], "link"), (rival_id, "non_link")]
    assert "同一人物と判定したため" in review.list_decisions(gw)["decisions"][0]["reason"]
    assert [e.action for e in list(gw.audit.entries())[-2:]] == ["review.decide", "review.decide"]
    assert review.review_groups(gw, decided="undecided", limit=1000)["undecided_pairs"] == listed["total_pairs"] - 1

    # Filters: by source, decided only.
    only = review.review_groups(gw, decided="decided", limit=1000)["groups"]
    assert all(not g["open"] for g in only)
    fully_decided = {p["id"] for p in grouped["pairs"]} <= {pair["id"], rival_id}
    assert any(p["id"] == pair["id"] for g in only for p in g["pairs"]) == fully_decided
    by_source = review.review_groups(gw, source=a[0], limit=1000)["groups"]
    assert all(any(a[0] in (p["a"]["source"], p["b"]["source"]) for p in g["pairs"]) for g in by_source)


@SQLITE
def test_history_folds_unchanged_resubmissions_and_shows_changes(gw, town: Town, agents) -> None:
    submit_town(gw, town, agents)
    rows = [dict(x) for x in town.sources["school"]]
    from gateway.ingest import ingest

    ingest(gw, agents["school"].submit("school", rows), "import")  # unchanged
    rows[0]["absence_days"] = "61"
    ingest(gw, agents["school"].submit("school", rows), "import")  # one attribute changed
    run_linkage(gw)
    a = models.assignments
    from agents.core.token import RecordTokeniser

    token = RecordTokeniser(agents["school"].linkage.secret, "school").token(rows[0]["record_id"])
    with gw.engine.connect() as conn:
        person_id = conn.execute(select(a.c.person_id).where(a.c.source == "school", a.c.token == token)).scalar()
    story = casework.history(gw, person_id, "caseworker")
    school = [e for e in story["events"] if e["source"] == "school"]
    assert [e["kind"] for e in school] == ["appeared", "changed"]
    assert school[0]["unchanged"] == 1  # the identical resubmission is folded, not repeated
    assert school[1]["changes"] == [{"attribute": "absence_days", "before": town.sources["school"][0]["absence_days"], "after": "61"}]
    assert story["submissions"] == sum(1 for _ in casework.timeline(gw, person_id, "caseworker")["events"])
    assert [e["at"] for e in story["events"]] == sorted(e["at"] for e in story["events"])


@SQLITE
def test_review_lists_follow_the_queue_not_the_weight(gw, town: Town, agents) -> None:
    """The queue's order is the order the run stored (``LinkResult.review_queue``: expected gain); a pair stored last
    with the highest weight of all is listed last by default, first only when sorted by weight."""
    submit_town(gw, town, agents)
    run = run_linkage(gw)
    before = review.review_pairs(gw, limit=1000)["pairs"]
    assert before
    r, rp = models.records, models.review_pairs
    with gw.engine.begin() as conn:
        used = {(p[s]["source"], p[s]["token"]) for p in before for s in ("a", "b")}
        school = next(t for t in conn.execute(select(r.c.token).where(r.c.source == "school")).scalars() if ("school", t) not in used)
        npo = next(t for t in conn.execute(select(r.c.token).where(r.c.source == "npo")).scalars() if ("npo", t) not in used)
        fields = json.dumps({k: {kk: vv for kk, vv in f.items() if kk in ("level", "label", "weight")} for k, f in before[0]["fields"].items()},
                            ensure_ascii=False)
        heavy = conn.execute(insert(rp).values(run_id=run["run_id"], source_a="npo", token_a=npo, source_b="school", token_b=school,
                                               weight=max(p["weight"] for p in before) + 5, fields=fields)).inserted_primary_key[0]
    assert [p["id"] for p in review.review_pairs(gw, limit=1000)["pairs"]] == [p["id"] for p in before] + [heavy]
    gain = review.review_groups(gw, limit=None)["groups"]
    assert gain[-1]["pairs"][0]["id"] == heavy and gain[0]["rank"] == 1
    assert [g["rank"] for g in gain] == sorted(g["rank"] for g in gain)
    assert review.review_groups(gw, sort="weight", limit=1)["groups"][0]["pairs"][0]["id"] == heavy
