"""Errors people can act on (issue #15, builds 5 and 7): /health names the failed check; every 5xx is JSON with a Japanese
reason and a request id that is in the gateway's log; a database that goes away and a disk that fills up are survived.

Real server, real PostgreSQL (a cluster of the test's own, stopped and started again), a real full filesystem (a
size-limited tmpfs the test mounts; that needs root, which the suite has here).
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.support import postgres as _postgres
from gateway.core import Gateway
from gateway.db import checkpoint, wal_path
from gateway.ingest import ingest
from synthetic.agents import SyntheticAgent
from tests.support.gateway import PASSWORD, Home, Server, cli, start_server, stop_server
from synthetic import Town

NDJSON = {"Content-Type": "application/x-ndjson"}


def _setup_home(path: Path, env: dict[str, str], agents: dict[str, SyntheticAgent]) -> Home:
    home = Home(path, env, agents)
    key_id = next(iter(agents.values())).linkage.key_id
    cli(["gateway", "init", "--home", str(path), "--linkage-key-id", key_id], env=env)
    home.cli("user", "add", "--username", "admin", "--role", "admin", "--password-stdin", input=PASSWORD + "\n")
    for source, agent in agents.items():
        home.cli("agent", "register", "--agent-public", str(agent.public_file), "--network", agent.network, "--source", source)
    return home


def _wait_health(server: Server, status: int, timeout: float = 600) -> dict:
    # The timeout is a safety net only: the wait ends as soon as /health says ``status``.
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(f"{server.base_url}/api/v1/health", timeout=300)
        if r.status_code == status or time.monotonic() > deadline:
            assert r.status_code == status, r.text
            return r.json()
        time.sleep(0.3)


def _log(server: Server) -> str:
    return (server.home.path / "logs" / "gateway.log").read_text(encoding="utf-8", errors="replace")


def test_health_names_its_checks(server: Server) -> None:
    body = httpx.get(f"{server.base_url}/api/v1/health", timeout=300).json()
    assert body == {"status": "ok", "checks": {"database": {"ok": True}, "disk": {"ok": True}, "scheduler": {"ok": True}}}


@pytest.fixture
def pg() -> Iterator[_postgres.Cluster]:
    with _postgres.controllable_cluster() as handle:
        yield handle


def test_postgresql_stopped_while_serving_answers_503_json_and_recovers(
        tmp_path: Path, pg: _postgres.Cluster, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    home = _setup_home(tmp_path / "gateway", {"TSUNAGU_DATABASE_URL": pg.url.render_as_string(hide_password=False)}, agents)
    server = start_server(home)
    try:
        token = server.token("admin")
        source, agent = next(iter(agents.items()))
        pg.stop()
        health = _wait_health(server, 503)
        assert health["status"] == "failed" and health["failed"] == ["database"]
        assert "データベース" in health["checks"]["database"]["reason"]

        with httpx.Client(base_url=server.base_url, timeout=300) as c:
            r = c.get("/api/v1/runs", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 503 and r.headers["content-type"].startswith("application/json")
            body = r.json()
            assert body["error"] == "database_unavailable" and "データベース" in body["detail"] and body["request_id"]
            assert r.headers["x-request-id"] == body["request_id"]
            assert body["request_id"] in _log(server)
            pushed = c.post("/api/v1/submissions", content=agent.submit(source, town.sources[source]), headers=NDJSON)
            assert pushed.status_code == 503 and pushed.json()["error"] == "database_unavailable"

        pg.start()
        assert _wait_health(server, 200)["status"] == "ok"
        with server.client() as c:
            again = c.post("/api/v1/submissions", content=agent.submit(source, town.sources[source]), headers=NDJSON)
            assert again.status_code == 200 and again.json()["status"] == "accepted", again.text
    finally:
        stop_server(server)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MiB tmpfs mounted for this test only (and unmounted after it)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root; run the suite as root (as `make test` does in the dev container)")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path) -> None:
    with path.open("wb") as f:
        block = b"\0" * (1 << 20)
        try:
            while True:
                f.write(block)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def test_full_disk_is_reported_and_survived(small_disk: Path, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    home = _setup_home(small_disk / "gateway", {}, agents)
    server = start_server(home, {"TSUNAGU_MIN_FREE_DISK_MB": "4"})
    try:
        assert _wait_health(server, 200)["status"] == "ok"
        filler = small_disk / "filler.bin"
        _fill(filler)
        health = _wait_health(server, 503)
        assert health["failed"] == ["disk"] and "空き" in health["checks"]["disk"]["reason"]
        source, agent = next(iter(agents.items()))
        data = agent.submit(source, town.sources[source])
        with httpx.Client(base_url=server.base_url, timeout=300) as c:
            r = c.post("/api/v1/submissions", content=data, headers=NDJSON)
        assert r.status_code == 503 and r.headers["content-type"].startswith("application/json"), r.text
        assert r.json()["error"] == "disk_full" and r.json()["request_id"]

        filler.unlink()
        assert _wait_health(server, 200)["status"] == "ok"
        with server.client() as c:
            again = c.post("/api/v1/submissions", content=data, headers=NDJSON)
        assert again.status_code == 200 and again.json()["status"] == "accepted", again.text
        assert again.json()["accepted"] == len(town.sources[source])
    finally:
        stop_server(server)


def test_sqlite_log_is_truncated_after_a_large_write(tmp_path: Path, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    home = _setup_home(tmp_path / "gateway", {}, agents)
    gw = Gateway.open(home.path)
    try:
        wal = wal_path(gw.engine)
        for source, agent in agents.items():
            assert ingest(gw, agent.submit(source, town.sources[source]), "import").status == "accepted"
        grown = wal.stat().st_size
        assert grown > 64 * 1024
        checkpoint(gw.engine)  # below the limit: copied back, the file stays for reuse
        assert wal.stat().st_size == grown
        checkpoint(gw.engine, limit=64 * 1024)  # past it: reset and truncated
        assert wal.stat().st_size == 0
    finally:
        gw.close()
