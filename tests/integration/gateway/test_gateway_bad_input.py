"""Bad input over HTTP: every refusal is a 4xx with a JSON error, writes nothing, and is logged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic import Town
from sqlalchemy import create_engine, text, update

from tests.support.gateway import Home, Server, start_server, stop_server
from gateway import models
from gateway.db import utcnow
from synthetic.agents import SyntheticAgent, synthetic_agents

NDJSON = {"Content-Type": "application/x-ndjson"}
LIMIT = 60_000


@pytest.fixture
def small_server(home: Home):
    """The real server with a small submission size limit."""
    s = start_server(home, {"TSUNAGU_MAX_SUBMISSION_BYTES": str(LIMIT)})
    try:
        yield s
    finally:
        stop_server(s)


def _counts(home: Home) -> tuple[int, int, int]:
    url = home.env.get("TSUNAGU_DATABASE_URL") or f"sqlite:///{home.path / 'gateway.db'}"
    engine = create_engine(url)
    with engine.connect() as conn:
        counts = tuple(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in ("submissions", "records", "record_history"))
    engine.dispose()
    return counts


def _events(server: Server) -> list[dict]:
    with server.client("admin") as c:
        return c.get("/api/v1/ingest-events", params={"limit": 1000}).json()


def test_bad_submissions_are_refused_whole_and_logged(small_server: Server, town: Town, agents: dict[str, SyntheticAgent],
                                                      tmp_path: Path) -> None:
    npo = agents["npo"]
    rows = town.sources["npo"]
    good = npo.submit("npo", rows)
    accepted = npo.sequence
    with small_server.client() as c:
        assert c.post("/api/v1/submissions", content=good, headers=NDJSON).json()["status"] == "accepted"
    before = _counts(small_server.home)

    strangers = synthetic_agents(["npo"], tmp_path / "strangers")["npo"]
    forged = json.loads(good.split(b"\n", 1)[0])
    forged["manifest"]["source"] = "school"
    school_rows = town.sources["school"][:10]
    # the same submission as an agent before the envelope wrote it (format 1), and as a newer envelope version
    old = json.loads(good.split(b"\n", 1)[0])
    old["manifest"] = {**{k: v for k, v in old["manifest"].items() if k != "kind"}, "format": "tsunagu-submission", "version": 1}
    newer = json.loads(good.split(b"\n", 1)[0])
    newer["manifest"]["version"] = 3
    cases = [
        ("format version 1", json.dumps(old).encode() + b"\n" + good.split(b"\n", 1)[1], NDJSON, 400, "unknown_version"),
        ("newer version", json.dumps(newer).encode() + b"\n" + good.split(b"\n", 1)[1], NDJSON, 400, "unknown_version"),
        ("malformed", b"this is not a submission\n", NDJSON, 400, "malformed_submission"),
        ("invalid JSON", b'{"manifest": {"format": \n{}\n', NDJSON, 400, "malformed_submission"),
        ("truncated", good[: len(good) - 40], NDJSON, 400, "content_mismatch"),
        ("no newline", good.split(b"\n", 1)[0], NDJSON, 400, "malformed_submission"),
        ("oversized", npo.submit("npo", rows * 8), NDJSON, 413, "too_large"),
        ("wrong content type", npo.submit("npo", rows), {"Content-Type": "application/json"}, 415, "unsupported_media_type"),
        ("unknown agent", strangers.submit("npo", rows), NDJSON, 401, "unknown_agent"),
        ("bad signature", json.dumps(forged).encode() + b"\n" + good.split(b"\n", 1)[1], NDJSON, 401, "bad_signature"),
        ("replayed sequence", npo.submit("npo", rows[:3], sequence=accepted), NDJSON, 409, "replay"),
        ("older sequence", npo.submit("npo", rows[:3], sequence=accepted - 1), NDJSON, 409, "replay"),
        ("source not registered", npo.submit("school", school_rows), NDJSON, 403, "source_not_registered"),
        ("forbidden field", agents["school"].submit("school", school_rows, attributes={"my_number": "123456789012"}), NDJSON,
         403, "forbidden_attribute"),
        ("attribute not allowed", agents["school"].submit("school", school_rows, attributes={"guardian_phone": "x"}), NDJSON,
         403, "forbidden_attribute"),
        ("unknown schema", npo.submit("npo", rows, extra={"schema_version": "tsunagu-jp/99"}), NDJSON, 422, "unknown_schema"),
        ("other linkage key", npo.submit("npo", rows, extra={"linkage_key_id": "lk_0000000000000000"}), NDJSON, 422,
         "wrong_linkage_key"),
    ]
    with small_server.client() as c:
        for name, body, headers, status, code in cases:
            r = c.post("/api/v1/submissions", content=body, headers=headers)
            assert r.status_code == status, (name, r.text)
            assert r.json()["error"] == code, name
            assert r.json()["detail"], name
            if code == "unknown_version":  # says what to do: upgrade the agent and send again
                assert "エージェントを最新版に更新" in r.json()["detail"] and "送り直して" in r.json()["detail"], name
            if code == "forbidden_attribute":
                assert "my_number" in r.json()["detail"] or "guardian_phone" in r.json()["detail"]
        # The very same submission again: the first answer, not a second copy.
        again = c.post("/api/v1/submissions", content=good, headers=NDJSON)
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert _counts(small_server.home) == before
    logged = [e["code"] for e in _events(small_server)]
    for _name, _body, _headers, _status, code in cases:
        assert code in logged


def test_revoked_agent_is_refused(server: Server, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    npo = agents["npo"]
    with server.client("admin") as c:
        assert c.post(f"/api/v1/agents/{npo.agent_id}/revoke", json={"reason": "端末紛失"}).status_code == 200
        assert [a["status"] for a in c.get("/api/v1/agents").json() if a["agent_id"] == npo.agent_id] == ["revoked"]
    with server.client() as c:
        r = c.post("/api/v1/submissions", content=npo.submit("npo", town.sources["npo"]), headers=NDJSON)
    assert r.status_code == 403 and r.json()["error"] == "agent_revoked"
    assert "agent_revoked" in [e["code"] for e in _events(server)]


def test_expired_and_bogus_tokens_are_refused(server: Server) -> None:
    token = server.token("caseworker")
    with server.client("caseworker") as c:
        assert c.get("/api/v1/persons").status_code in (200, 404)
    url = server.home.env.get("TSUNAGU_DATABASE_URL") or f"sqlite:///{server.home.path / 'gateway.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(update(models.sessions).values(expires_at=utcnow().replace(year=2000)))
    engine.dispose()
    with server.client() as c:
        r = c.get("/api/v1/persons", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and r.json()["error"] == "token_expired"
        r = c.get("/api/v1/persons", headers={"Authorization": "Bearer not-a-token"})
        assert r.status_code == 401 and r.json()["error"] == "invalid_token"
        r = c.post("/api/v1/auth/login", json={"username": "caseworker", "password": "wrong password!!"})
        assert r.status_code == 401 and r.json()["error"] == "login_failed"
        r = c.post("/api/v1/auth/login", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["error"] == "invalid_request"
    assert {"token_expired", "invalid_token", "login_failed"} <= {e["code"] for e in _events(server)}
