"""kill -9 along the escrow's request path: after a crash at any point, the escrow's data and its audit log agree.

The real server runs with ``TSUNAGU_ESCROW_CRASH_AT`` naming one point of
``escrow.faults.POINTS``; it SIGKILLs itself there (no handler runs, exactly
like ``kill -9``). The escrow is then started again and checked:

* a request exists if and only if its filing is in the log;
* a decision exists if and only if its approval or rejection is in the log;
* a request is ``released`` if and only if its release is in the log
  (the escrow never says "released" without a release in its log, and never
  logs a release it did not make), and the log still verifies;
* a release interrupted before its commit can be completed after the restart,
  and opens exactly the request's records, once.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.support.escrow import CUSTODIANS, IDENTITIES, PASSWORD, USERS, Ceremony, GatewayLog, Server, cli, filing, start_server
from escrow import db
from escrow.faults import POINTS
from keys.audit import verify_export


@pytest.fixture(scope="module")
def crash_home(ceremony: Ceremony, gateway_log: GatewayLog, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An escrow home of its own (the crashes must not disturb the other tests' escrow)."""
    home = tmp_path_factory.mktemp("crash") / "home"
    cli(["escrow", "init", "--home", str(home), "--from-keys", str(ceremony.admin_home),
         "--gateway-verifier", str(gateway_log.verifier_file)])
    for username, roles in USERS.items():
        cli(["escrow", "user", "add", "--home", str(home), "--username", username, *[a for r in roles for a in ("--role", r)],
             "--password-stdin"], input=PASSWORD + "\n")
    return home


def _crashed(server: Server, call) -> None:
    """Make the call the server dies in; it must die by SIGKILL, answering nothing."""
    with pytest.raises(httpx.TransportError):
        call()
    assert server.process.wait(timeout=120) == -9
    for c in server.clients.values():
        c.close()


def _log(server: Server) -> tuple[list[dict[str, str]], list[str]]:
    r = server.client("kato").get("/api/v1/audit/export")
    assert r.status_code == 200, r.text
    lines = r.text.strip().split("\n")
    return [json.loads(line)["entry"] for line in lines if json.loads(line)["type"] == "entry"], lines


def _consistent(server: Server) -> dict[str, str]:
    """Check data against log for every request; returns each request's status."""
    entries, lines = _log(server)
    verify_export(lines)
    ok = [e for e in entries if e["action"].startswith("reidentify.") and not e["outcome"].startswith("refused")]
    engine = db.open_engine(str(server.home / "escrow.db"))
    try:
        with engine.connect() as conn:
            requests = {r.id: r for r in conn.execute(select(db.requests))}
            decisions = conn.execute(select(db.decisions)).all()
    finally:
        engine.dispose()
    filed = [e["target"] for e in ok if e["action"] == "reidentify.request"]
    assert sorted(filed) == sorted(requests), "a request without its filing in the log, or a logged filing without a request"
    decided = sorted((e["target"], e["actor"]) for e in ok if e["action"] in ("reidentify.approve", "reidentify.reject"))
    assert decided == sorted((d.request_id, d.approver) for d in decisions)
    released = [e["target"] for e in ok if e["action"] == "reidentify.release"]
    assert sorted(released) == sorted(i for i, r in requests.items() if r.status == "released")
    assert all(r.released_at is not None for r in requests.values() if r.status == "released")
    return {i: r.status for i, r in requests.items()}


@pytest.mark.parametrize("point", POINTS)
def test_kill_9_at_each_point_leaves_data_and_log_consistent(point: str, crash_home: Path, ceremony: Ceremony,
                                                            gateway_log: GatewayLog) -> None:
    request_id = f"reid-crash-{point.replace('.', '-').replace('_', '-')}"
    body = filing(ceremony, gateway_log, request_id, ["tok-a", "tok-c"], approvals_required=1)
    server = start_server(crash_home, crash_at=point)
    try:
        tanaka, sato = server.client("tanaka"), server.client("sato")
        if point.startswith("file."):
            _crashed(server, lambda: tanaka.post("/api/v1/requests", json=body))
        else:
            assert tanaka.post("/api/v1/requests", json=body).status_code == 201
            if point.startswith("decide."):
                _crashed(server, lambda: sato.post(f"/api/v1/requests/{request_id}/approve"))
            else:
                assert sato.post(f"/api/v1/requests/{request_id}/approve").json()["status"] == "approved"
                server.unseal(ceremony)
                _crashed(server, lambda: tanaka.post(f"/api/v1/requests/{request_id}/release"))
    finally:
        if server.process.poll() is None:
            server.stop()

    server = start_server(crash_home)
    try:
        status = _consistent(server).get(request_id)
        expected = {"file": None, "decide": "pending", "release": "released" if point == "release.after_commit" else "approved"}
        assert status == expected[point.split(".")[0]], point
        if status == "approved":  # the interrupted release had not happened: it can be made now, once, for these records only
            server.unseal(ceremony)
            r = server.client("tanaka").post(f"/api/v1/requests/{request_id}/release")
            assert r.status_code == 200, r.text
            assert {x["token"]: x["identity"] for x in r.json()["records"]} == {t: IDENTITIES[t] for t in ("tok-a", "tok-c")}
            assert server.client("tanaka").post(f"/api/v1/requests/{request_id}/release").status_code == 410
            assert _consistent(server)[request_id] == "released"
    finally:
        server.stop()


def test_every_crash_point_is_on_the_request_path() -> None:
    """The points the test kills at are the ones the code reaches (a renamed point would silently never fire)."""
    source = (Path(db.__file__).with_name("reidentification.py")).read_text(encoding="utf-8")
    assert [p for p in POINTS if f'crash_point("{p}")' not in source] == []
    assert len(POINTS) >= 6 and CUSTODIANS
