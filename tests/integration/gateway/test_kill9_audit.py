"""kill -9 at every step of a change: afterwards the data and the audit log agree, and the log still verifies.

Fourteen crash points (gateway.crashpoints) across ingest, publishing a
linkage run and a review decision. The process that makes the change — the
real uvicorn gateway for submissions and decisions, the real `tsunagu gateway
link` for runs — SIGKILLs itself at the point (its exit status proves it got
there); then the gateway is opened again, as after a restart, and every
stored submission, published run and decision must have its entry, and every
entry its data. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from gateway import models
from gateway.core import Gateway
from gateway.review import _pair_label, canonical
from tests.support.gateway import TSUNAGU, Home, cli, start_server
from keys import audit
from synthetic import Town

INGEST = ["ingest.before_store", "ingest.after_submission_row", "ingest.after_records", "ingest.after_audit", "ingest.after_commit"]
LINK = ["link.after_start", "link.after_store", "link.after_publish", "link.after_audit", "link.after_commit"]
REVIEW = ["review.before_store", "review.after_decision_row", "review.after_audit", "review.after_commit"]
#: points after which the change is committed (with its entry)
COMMITTED = {"ingest.after_commit", "link.after_commit", "review.after_commit"}
QUIET = {"TSUNAGU_LINK_DEBOUNCE_SECONDS": "100000", "TSUNAGU_LINK_INTERVAL_MINUTES": "0", "TSUNAGU_WITNESS_INTERVAL_SECONDS": "0"}


def _open(home: Home) -> Gateway:
    url = home.env.get("TSUNAGU_DATABASE_URL")
    return Gateway.open(home.path, **({"database_url": url} if url else {}))


def _killed(process: subprocess.Popen) -> None:
    assert process.wait(timeout=600) == -signal.SIGKILL, "the process did not reach its crash point"


def _agree(home: Home) -> dict[str, int]:
    """Open the gateway again and check that data and log agree both ways; return the counts."""
    gw = _open(home)
    try:
        entries = list(gw.audit.entries())
        with gw.engine.connect() as conn:
            subs = {f"{s}#{i}" for i, s in conn.execute(select(models.submissions.c.id, models.submissions.c.source))}
            runs = {f"run#{i}" for i in conn.execute(
                select(models.link_runs.c.id).where(models.link_runs.c.status == "done")).scalars()}
            current = conn.execute(select(models.current_run.c.run_id)).scalar()
            d = models.review_decisions
            decisions = Counter((r.decided_by, _pair_label(((r.source_a, r.token_a), (r.source_b, r.token_b))), r.decision)
                                for r in conn.execute(select(d)))
        assert subs == {e.target for e in entries if e.action == "submission.accept"}
        assert runs == {e.target for e in entries if e.action == "link.run"}
        assert current is None or f"run#{current}" in runs
        assert decisions == Counter((e.actor, e.target, e.outcome) for e in entries if e.action == "review.decide")
        vkey = gw.signer.verifier.vkey()
        assert audit.verify_export(gw.audit.export(vkey), vkey).size == len(entries)
        return {"submissions": len(subs), "runs": len(runs), "decisions": sum(decisions.values())}
    finally:
        gw.close()


def _pair(home: Home) -> tuple[tuple[str, str], tuple[str, str]]:
    gw = _open(home)
    try:
        with gw.engine.connect() as conn:
            rows = conn.execute(select(models.records.c.source, models.records.c.token)).all()
    finally:
        gw.close()
    first = rows[0]
    second = next(r for r in rows if r.source != first.source)
    return canonical((first.source, first.token), (second.source, second.token))


def test_kill9_at_every_point_leaves_data_and_log_agreeing(home: Home, town: Town, tmp_path: Path) -> None:
    sources = sorted(home.agents)
    # Two sources accepted beforehand, so a decision has records of two sources to join.
    from gateway.ingest import ingest

    gw = _open(home)
    try:
        for source in sources[:2]:
            assert ingest(gw, home.agents[source].submit(source, town.sources[source]), "import").status == "accepted"
    finally:
        gw.close()
    counts = _agree(home)

    # Ingest: the server dies while accepting a submission.
    for n, point in enumerate(INGEST):
        source = sources[n % len(sources)]
        server = start_server(home, {**QUIET, "TSUNAGU_TEST_CRASH_AT": point})
        with pytest.raises(httpx.TransportError):
            with server.client() as c:
                c.post("/api/v1/submissions", content=home.agents[source].submit(source, town.sources[source]),
                       headers={"Content-Type": "application/x-ndjson"})
        _killed(server.process)
        after = _agree(home)
        assert after["submissions"] == counts["submissions"] + (point in COMMITTED), point
        counts = after

    # Linkage runs: `tsunagu gateway link` dies while publishing.
    env = {**os.environ, **home.env, "PATH": os.environ.get("PATH", "")}
    for point in LINK:
        process = subprocess.Popen([TSUNAGU, "gateway", "link", "--home", str(home.path)], env={**env, "TSUNAGU_TEST_CRASH_AT": point},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _killed(process)
        after = _agree(home)
        assert after["runs"] == counts["runs"] + (point in COMMITTED), point
        counts = after
    # The next run cleans up the interrupted ones; still in agreement.
    home.cli("link")
    counts = _agree(home)

    # Review decisions: the server dies while recording one.
    a, b = _pair(home)
    for point in REVIEW:
        server = start_server(home, {**QUIET, "TSUNAGU_TEST_CRASH_AT": point})
        token = server.token("caseworker")
        with pytest.raises(httpx.TransportError):
            with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=300) as c:
                c.post("/api/v1/review/decisions", json={"a": {"source": a[0], "token": a[1]}, "b": {"source": b[0], "token": b[1]},
                                                         "decision": "non_link", "reason": "別人と確認"})
        _killed(server.process)
        after = _agree(home)
        assert after["decisions"] == counts["decisions"] + (point in COMMITTED), point
        counts = after

    # And the whole log verifies for an auditor, with the trusted key and an auditor's witness.
    gw = _open(home)
    try:
        vkey, origin = gw.signer.verifier.vkey(), gw.audit.origin
        export = tmp_path / "audit.jsonl"
        export.write_text("\n".join(gw.audit.export(vkey)) + "\n", encoding="utf-8")
    finally:
        gw.close()
    (tmp_path / "gateway.vkey").write_text(vkey)
    auditor = tmp_path / "auditor"
    cli(["audit", "witness", "init", "--home", str(auditor), "--name", "kansa.example/witness"])
    cli(["audit", "witness", "trust", "--home", str(auditor), "--origin", origin, "--log-key", str(tmp_path / "gateway.vkey")])
    cli(["audit", "witness", "cosign", "--home", str(auditor), str(export)])
    out = cli(["audit", "verify", str(export), "--public-key", str(tmp_path / "gateway.vkey"),
               "--witness-key", str(auditor / "witness" / "witness-verifier.txt")])
    assert "検証成功" in out
