"""One code per meaning for every envelope kind: a snapshot and a federation submission are refused alike.

The gateway's real ingest pipeline (``gateway.ingest.run``) on an opened
gateway, with real agent keys; the federation submission is written by
``keys.federation`` as the My Number agent writes it.
"""

from __future__ import annotations

from typing import Any

import pytest
from synthetic import Town

from gateway.agents import revoke_agent
from gateway.errors import GatewayError
from gateway.federation.ingest import FEDERATION_SUBMISSION
from gateway.ingest import SUBMISSION, run
from keys.linkage_secret import generate_linkage_secret
from synthetic.agents import SyntheticAgent
from tests.integration.gateway.federation.test_federation_gateways import _submission


def _refused(gw: Any, kind: Any, data: bytes) -> tuple[int, str]:
    with pytest.raises(GatewayError) as refused:
        run(gw, kind, data, "http")
    return refused.value.status, refused.value.code


def test_a_snapshot_and_a_federation_submission_are_refused_with_the_same_codes(
        gw: Any, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    agent = agents["npo"]
    rows = town.sources["npo"][:3]
    snapshot = agent.submit("npo", rows)
    federation = _submission(agent, generate_linkage_secret(), rows, [("", "082210")] * len(rows), gw.policy.municipality_code, 1)
    for kind, data in ((SUBMISSION, snapshot), (FEDERATION_SUBMISSION, federation)):
        assert _refused(gw, kind, b"this is not a submission\n") == (400, "malformed_submission"), kind.name
        last_record_dropped = data.rstrip(b"\n").rsplit(b"\n", 1)[0] + b"\n"
        assert _refused(gw, kind, last_record_dropped) == (400, "content_mismatch"), kind.name
    revoke_agent(gw, agent.agent_id, "テスト")
    assert _refused(gw, SUBMISSION, agent.submit("npo", rows)) == (403, "agent_revoked")
    assert _refused(gw, FEDERATION_SUBMISSION, federation) == (403, "agent_revoked")


def test_no_refusal_class_keeps_the_old_federation_codes() -> None:
    import gateway.errors

    codes = {c.code for c in vars(gateway.errors).values() if isinstance(c, type) and issubclass(c, GatewayError) and "code" in vars(c)}
    assert not {"malformed", "revoked"} & codes
    assert {"malformed_submission", "content_mismatch", "agent_revoked"} <= codes


def test_an_unknown_sender_is_refused_alike(gw: Any, town: Town, tmp_path) -> None:
    stranger = SyntheticAgent("stranger-1", "mynumber", generate_linkage_secret(), None, tmp_path / "stranger")  # type: ignore[arg-type]
    federation = _submission(stranger, generate_linkage_secret(), town.sources["npo"][:2], [("", "082210")] * 2, gw.policy.municipality_code, 1)
    assert _refused(gw, FEDERATION_SUBMISSION, federation) == (401, "unknown_agent")
