"""Screening over the current run: sorted, capped, explained by data items, only visible attributes, logged; the route checks the policy."""

from __future__ import annotations

import pytest
from synthetic import Town

from tests.support.gateway import Server, submit_town
from gateway import screening
from gateway.errors import GatewayError
from gateway.identity import User
from gateway.link import run_linkage
from synthetic.agents import SyntheticAgent

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

CASEWORKER = User(2, "caseworker", "caseworker")


def _entries(gw):
    return list(gw.audit.entries())


def test_screening_lists_flagged_persons_with_their_data_items(gw, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    with pytest.raises(GatewayError) as refused:
        screening.screen(gw, CASEWORKER)
    assert refused.value.status == 404

    submit_town(gw, town, agents)
    run = run_linkage(gw)
    listing = screening.screen(gw, CASEWORKER)
    assert listing["run_id"] == run["run_id"] and listing["flagged"] > 0 and listing["left_out"] == 0
    scores = [e["score"] for e in listing["entries"]]
    assert scores == sorted(scores, reverse=True)
    for entry in listing["entries"]:
        assert entry["person_id"].startswith("P")
        assert entry["score"] == sum(f["weight"] for f in entry["flags"])
        for flag in entry["flags"]:
            assert flag["items"] and all({"source", "attribute", "value", "condition"} <= set(i) for i in flag["items"])
    logged = _entries(gw)[-1]
    assert (logged.action, logged.actor, logged.target) == ("screening.view", "caseworker", f"run#{run['run_id']}")
    assert f"flagged={listing['flagged']}" in logged.outcome


def test_the_capacity_caps_the_list_and_says_how_many_it_left_out(gw, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    submit_town(gw, town, agents)
    run_linkage(gw)
    full = screening.screen(gw, CASEWORKER)
    (gw.settings.home / "screening.toml").write_text(
        'version = 1\ncapacity = 3\n[[rules]]\nid = "long_absence"\nlabel = "年間欠席30日以上"\nweight = 2\n'
        'all = [{ source = "school", attribute = "absence_days", op = ">=", value = 30 }]\n', encoding="utf-8")
    capped = screening.screen(gw, CASEWORKER)
    assert len(capped["entries"]) == 3 and capped["capacity"] == 3
    assert capped["left_out"] == capped["flagged"] - 3 > 0
    assert {f["rule_id"] for e in capped["entries"] for f in e["flags"]} == {"long_absence"}
    assert full["flagged"] >= capped["flagged"]

    (gw.settings.home / "screening.toml").write_text("version = 1\ncapacity = 0\n", encoding="utf-8")
    with pytest.raises(GatewayError) as broken:
        screening.screen(gw, CASEWORKER)
    assert "スクリーニング定義" in broken.value.detail


def test_a_role_sees_only_the_attributes_the_policy_shows_it(gw, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    submit_town(gw, town, agents)
    run_linkage(gw)
    # The default policy shows the auditor no attribute: screening cannot reveal a value the persons screens hide.
    assert screening.screen(gw, CASEWORKER)["flagged"] > 0
    assert screening.screen(gw, User(5, "auditor", "auditor"))["flagged"] == 0


def test_the_route_needs_a_role_that_may_read_persons(server: Server) -> None:
    with server.client("caseworker") as c:
        assert c.get("/api/v1/screening").status_code == 404  # no run yet
    with server.client("admin") as c:
        r = c.get("/api/v1/screening")
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
    with server.client() as c:
        assert c.get("/api/v1/screening").status_code == 401


def test_the_rule_report_is_made_once_per_run_and_rules_version(gw, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    """The dashboard's check reads every attribute of the run: it is made once, then again only for a new run or edited rules."""
    submit_town(gw, town, agents)
    run_linkage(gw)
    first = screening.rule_report(gw)
    assert screening.rule_report(gw) is first  # the same report object: not recomputed
    rules = gw.settings.home / screening.SCREENING_FILE
    rules.write_text('version = 1\ncapacity = 10\n[[rules]]\nid = "old"\nlabel = "健診未受診（旧い規則）"\nweight = 1\n'
                     'all = [{ source = "maternal", attribute = "checkup_missed", op = "==", value = "1" }]\n', encoding="utf-8")
    try:
        edited = screening.rule_report(gw)
        assert edited is not first and any(p["rule_id"] == "old" and p["kind"] == "unknown_value" for p in edited)
    finally:
        rules.unlink()
    run_linkage(gw)
    again = screening.rule_report(gw)
    assert again is not first and again == first  # a new run is checked anew (same data, same result)
