"""Every route in the OpenAPI document authenticates and checks the role through the policy."""

from __future__ import annotations

import re

from tests.support.gateway import Server

#: Routes outside the session scheme, and why.
PUBLIC = {("get", "/api/v1/health"), ("post", "/api/v1/auth/login")}
#: Agents authenticate by the signature on the submission (tests/integration/gateway/test_gateway_bad_input.py).
SIGNED = {("post", "/api/v1/submissions"), ("post", "/api/v1/submissions/state")}
#: The witness (C2SP tlog-witness): a checkpoint is authenticated by the log key that signed it, and what the
#: witness cosigned is public by design (tests/unit/transparency/test_tlog_witness.py, tests/integration/gateway/test_witness_exchange.py).
WITNESS = {("post", "/api/v1/witness/add-checkpoint"), ("get", "/api/v1/witness/latest")}
#: Any signed-in user may end their own session.
ANY_ROLE = {("post", "/api/v1/auth/logout"), ("post", "/api/v1/auth/password")}  # any signed-in user: end the session, change own password


def _routes(server: Server) -> list[tuple[str, str]]:
    with server.client() as c:
        spec = c.get("/openapi.json").json()
    return [(method, path) for path, item in spec["paths"].items() for method in item]


def test_every_route_needs_a_session_and_the_right_role(server: Server) -> None:
    routes = _routes(server)
    assert len(routes) >= 15
    checked = 0
    with server.client() as anonymous, server.client("custodian") as custodian:
        for method, path in routes:
            if (method, path) in PUBLIC | SIGNED | WITNESS:
                continue
            url = re.sub(r"\{[^}]+\}", "x", path)
            r = anonymous.request(method.upper(), url)
            assert r.status_code == 401, (method, path, r.text)
            assert r.json()["error"] == "not_authenticated"
            if (method, path) in ANY_ROLE:
                continue
            r = custodian.request(method.upper(), url, json={})
            assert r.status_code == 403, (method, path, r.text)
            assert r.json()["error"] == "forbidden" and "鍵管理者" in r.json()["detail"]
            checked += 1
    assert checked >= 12


def test_health_and_unknown_urls_answer_json(server: Server) -> None:
    with server.client() as c:
        assert c.get("/api/v1/health").json()["status"] == "ok"
        r = c.get("/api/v1/nothing-here")
        assert r.status_code == 404 and r.json()["error"] == "not_found"
