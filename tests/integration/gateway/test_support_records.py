"""Support records at the gateway (on PostgreSQL): coded fields only, refused notes and codes, versions,
the frozen list a case links to, and an audit entry committed with every change."""

from __future__ import annotations

import pytest

from tests.support.gateway import submit_town
from gateway import screening, support
from gateway.errors import GatewayError
from gateway.evaluation.report import evaluation
from gateway.identity import User
from gateway.link import run_linkage
from synthetic.agents import SyntheticAgent
from synthetic import Town

CASEWORKER = User(2, "caseworker", "caseworker")
# The end-to-end test runs on SQLite; this one covers the migration and queries on PostgreSQL.
pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def test_cases_are_coded_validated_versioned_and_logged(gw, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    submit_town(gw, town, agents)
    run_linkage(gw)
    listing = screening.screen(gw, CASEWORKER)
    assert support.ensure_snapshot(gw, "someone") == support.ensure_snapshot(gw, "else")  # frozen once per run
    first = listing["entries"][0]
    case = support.open_case(gw, CASEWORKER, first["person_id"], assessment="needs_support", difficulties=["poverty", "poverty"],
                             supports=["financial"])
    assert case["origin"] == "screening" and case["rank"] == 1 and case["rules"] == [f["rule_id"] for f in first["flags"]]
    assert case["difficulties"] == ["poverty"] and case["checked_on"] and case["supported_on"] and case["version"] == 1

    for fields, code in (({"note": "山田さんに電話"}, "note_refused"), ({"difficulties": ["bullying"]}, "unknown_difficulties"),
                         ({"assessment": "not_needed"}, "reason_required"), ({"department": "police"}, "unknown_department"),
                         ({"assignee": "田中 花子"}, "invalid_assignee"), ({"checked_on": "2026/12/01"}, "invalid_date"),
                         ({"not_needed_reason": "no_concern"}, "reason_without_not_needed")):
        with pytest.raises(GatewayError) as refused:
            support.update_case(gw, CASEWORKER, case["id"], **fields)
        assert (refused.value.status, refused.value.code) == (422, code), fields
    updated = support.update_case(gw, CASEWORKER, case["id"], expected_version=1, status="closed", note="支援終了")
    assert updated["version"] == 2 and updated["status"] == "closed" and updated["supports"] == ["financial"]
    assert [h["status"] for h in updated["history"]] == ["open", "closed"]
    with pytest.raises(GatewayError) as stale:
        support.update_case(gw, CASEWORKER, case["id"], expected_version=1, status="supporting")
    assert stale.value.status == 409

    flagged = {e["person_id"] for e in listing["entries"]}
    with gw.engine.connect() as conn:
        other = next(p for p in support.all_attributes(conn, listing["run_id"]) if p not in flagged)
    found_elsewhere = support.open_case(gw, CASEWORKER, other, assessment="needs_support", supports=["referral"])
    assert found_elsewhere["origin"] == "other" and found_elsewhere["rules"] == []
    with pytest.raises(GatewayError) as missing:
        support.open_case(gw, CASEWORKER, "P0000000000000000")
    assert missing.value.status == 404

    entries = list(gw.audit.entries())
    actions = [e.action for e in entries]
    assert actions.count("support.open") == 2 and actions.count("support.update") == 1  # refused changes are not logged
    assert actions.count("screening.snapshot") == 1
    assert all("支援終了" not in e.outcome for e in entries)  # notes stay out of the log

    result = evaluation(gw, "snapshot")
    assert result["total"]["checked"] == 1 and result["total"]["needs_support"] == 1
    assert result["reach"] == {"supported": 2, "supported_flagged": 1, "supported_other_route": 1, "needing": 2,
                               "needing_flagged": 1, "recall_proxy": 0.5}
