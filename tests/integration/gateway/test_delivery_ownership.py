"""One owner per source and hash-chained submissions at the gateway (issue #15, builds 1 and 2), over HTTP on the real server.

A second agent registered for a source is refused; another agent's submission for a source is refused and overwrites
nothing; an administrator's hand-over (CLI and API) moves the source and is in the audit log; a submission that does
not follow the agent's last accepted one (a fork), or comes from another copy of the agent without ``moved_from``, is
refused with a message naming the copy to keep.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from gateway import models
from gateway.core import Gateway
from synthetic.agents import SyntheticAgent
from tests.support.gateway import Home, Server
from keys.submission import manifest_sha256, read_submission, write_state_request
from synthetic import Town
from tsunagu.cli import app

NDJSON = {"Content-Type": "application/x-ndjson"}


def _count(home: Home, source: str) -> int:
    url = home.env.get("TSUNAGU_DATABASE_URL")
    gw = Gateway.open(home.path, **({"database_url": url} if url else {}))
    try:
        with gw.engine.connect() as conn:
            return conn.execute(select(func.count()).where(models.records.c.source == source)).scalar()
    finally:
        gw.close()


def _cli(home: Home, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["gateway", *args, "--home", str(home.path)], env=home.env)
    # A refusal leaves the CLI as CommandError (printed by tsunagu.cli.main in real use).
    return result.exit_code, result.output + (str(result.exception) if result.exception else "")


def test_a_source_has_one_agent_until_an_administrator_hands_it_over(server: Server, home: Home, town: Town,
                                                                     agents: dict[str, SyntheticAgent], tmp_path: Path) -> None:
    npo = agents["npo"]  # the internet network also has "csw", which no agent owns here
    successor = SyntheticAgent("agent-npo-new", npo.network, npo.linkage, npo.escrow, tmp_path / "successor")
    with server.client() as c:
        assert c.post("/api/v1/submissions", content=npo.submit("npo", town.sources["npo"]), headers=NDJSON).json()["status"] == "accepted"

    # A second agent for the npo source: refused, naming the owner and the hand-over command.
    code, output = _cli(home, "agent", "register", "--agent-public", str(successor.public_file), "--network", npo.network,
                        "--source", "npo")
    assert code != 0 and "すでに別のエージェントの担当" in output and npo.agent_id in output and "handover" in output
    # Registered for a free source only, its npo snapshot is refused and overwrites nothing.
    home.cli("agent", "register", "--agent-public", str(successor.public_file), "--network", npo.network, "--source", "csw")
    with server.client() as c:
        r = c.post("/api/v1/submissions", content=successor.submit("npo", town.sources["npo"][:20]), headers=NDJSON)
        assert r.status_code == 403 and r.json()["error"] == "source_not_registered"
    assert _count(home, "npo") == len(town.sources["npo"])

    # The hand-over needs an administrator (API: agents.manage) and goes in the audit log.
    with server.client("caseworker") as c:
        assert c.post(f"/api/v1/agents/{successor.agent_id}/handover", json={"source": "npo", "reason": "機器更新"}).status_code == 403
    with server.client("admin") as admin:
        r = admin.post(f"/api/v1/agents/{successor.agent_id}/handover", json={"source": "npo", "reason": "機器更新"})
        assert r.status_code == 200, r.text
        assert r.json() == {"source": "npo", "from": npo.agent_id, "to": successor.agent_id}
    code, output = _cli(home, "agent", "handover", "--source", "npo", "--to", successor.agent_id, "--reason", "再実行")
    assert code != 0 and "すでにエージェント" in output
    with server.client() as c:
        old = c.post("/api/v1/submissions", content=npo.submit("npo", town.sources["npo"][:10]), headers=NDJSON)
        assert old.status_code == 403 and old.json()["error"] == "source_not_registered"
        new = c.post("/api/v1/submissions", content=successor.submit("npo", town.sources["npo"][:30]), headers=NDJSON)
        assert new.status_code == 200 and new.json()["status"] == "accepted", new.text
    assert _count(home, "npo") == new.json()["accepted"] > 0
    # Back to the first agent, by the CLI this time.
    code, output = _cli(home, "agent", "handover", "--source", "npo", "--to", npo.agent_id, "--reason", "戻し")
    assert code == 0, output
    url = home.env.get("TSUNAGU_DATABASE_URL")
    gw = Gateway.open(home.path, **({"database_url": url} if url else {}))
    try:
        targets = [e.target for e in gw.audit.entries() if e.action == "source.handover"]
    finally:
        gw.close()
    assert targets == [f"npo:{npo.agent_id}->{successor.agent_id}", f"npo:{successor.agent_id}->{npo.agent_id}"]


def test_a_fork_is_refused_and_overwrites_nothing(server: Server, home: Home, town: Town,
                                                   agents: dict[str, SyntheticAgent]) -> None:
    school, rows = agents["school"], town.sources["school"]

    def chained(previous: str, instance: str, count: int, **more: str) -> bytes:
        return school.submit("school", rows[:count], extra={"previous": previous, "instance": instance,
                                                             "instance_label": f"host-{instance}:/agent", **more})

    with server.client() as c:
        one = chained("", "aaaa", 60)
        assert c.post("/api/v1/submissions", content=one, headers=NDJSON).json()["status"] == "accepted"
        h1 = manifest_sha256(read_submission(one).manifest)
        two = chained(h1, "aaaa", 100)
        second = c.post("/api/v1/submissions", content=two, headers=NDJSON).json()
        assert second["status"] == "accepted"
        h2 = manifest_sha256(read_submission(two).manifest)

        # A clone that still believes h1 is the head: refused, naming the copy the gateway follows.
        fork = c.post("/api/v1/submissions", content=chained(h1, "bbbb", 100), headers=NDJSON)
        assert fork.status_code == 409 and fork.json()["error"] == "fork"
        assert "host-aaaa:/agent" in fork.json()["detail"] and "tsunagu agent resync" in fork.json()["detail"]
        # The clone with the right head but another copy, not declared moved: refused too.
        other = c.post("/api/v1/submissions", content=chained(h2, "bbbb", 100), headers=NDJSON)
        assert other.status_code == 409 and other.json()["error"] == "fork"
        assert _count(home, "school") == second["accepted"]

        # The state route answers the agent that signs, and only it.
        ask = write_state_request(school.agent_id, school.keys.signing_key, datetime.now(timezone.utc).isoformat())
        state = c.post("/api/v1/submissions/state", content=ask, headers={"Content-Type": "application/json"})
        assert state.status_code == 200, state.text
        body = state.json()
        assert body["head"]["manifest_sha256"] == h2 and body["head"]["instance"] == "aaaa"
        assert body["sequence"] == read_submission(two).manifest["sequence"]  # the refused forks do not count
        assert body["sources"]["school"]["content_sha256"] == read_submission(two).manifest["content_sha256"]
        forged = json.loads(ask)
        forged["manifest"]["agent_id"] = agents["residents"].agent_id
        assert c.post("/api/v1/submissions/state", content=json.dumps(forged),
                      headers={"Content-Type": "application/json"}).status_code == 401

        # Moved on purpose (after `tsunagu agent resync`): the new copy names the old one and is accepted.
        moved = c.post("/api/v1/submissions", content=chained(h2, "bbbb", 40, moved_from="aaaa"), headers=NDJSON)
        assert moved.status_code == 200 and moved.json()["status"] == "accepted", moved.text
    assert _count(home, "school") == moved.json()["accepted"] < second["accepted"]  # the moved copy's snapshot


def test_an_unchained_submission_is_accepted_only_before_the_chain_starts(server: Server, home: Home, town: Town,
                                                                           agents: dict[str, SyntheticAgent]) -> None:
    school, rows = agents["school"], town.sources["school"]
    with server.client() as c:
        # An agent from before the chain: accepted as it always was.
        old = c.post("/api/v1/submissions", content=school.submit("school", rows[:50]), headers=NDJSON)
        assert old.status_code == 200 and old.json()["status"] == "accepted", old.text
        # Upgraded, it starts its chain (previous = "") on top of what it sent before.
        first = school.submit("school", rows[:80], extra={"previous": "", "instance": "aaaa", "instance_label": "host-a:/agent"})
        assert c.post("/api/v1/submissions", content=first, headers=NDJSON).json()["status"] == "accepted"
        # From then on an unchained submission (old software, or an old copy) is refused and overwrites nothing.
        stale = c.post("/api/v1/submissions", content=school.submit("school", rows[:10]), headers=NDJSON)
        assert stale.status_code == 409 and stale.json()["error"] == "unchained", stale.text
        assert "最新の tsunagu に更新" in stale.json()["detail"] and school.agent_id in stale.json()["detail"]
    assert _count(home, "school") == 80
