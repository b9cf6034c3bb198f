"""Gateway test helpers and fixtures: a synthetic town with stand-in agents, a gateway home on SQLite or PostgreSQL, and the real server.

The server is the real ``tsunagu gateway serve`` (uvicorn) in a subprocess on
a free loopback port; setup goes through the real CLI commands. The fixtures
are re-exported by ``conftest.py``; tests import the helpers from here (a
unique module name: every test folder has a ``conftest``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from typer.testing import CliRunner

from synthetic.agents import SyntheticAgent, synthetic_agents
from tests.support import server as _server
from synthetic import Town, generate_town
from tsunagu.cli import app

PASSWORD = "correct horse battery staple"
ROLES = ("admin", "caseworker", "analyst", "auditor", "custodian", "approver")
TSUNAGU = str(Path(sys.executable).with_name("tsunagu"))


@pytest.fixture(scope="session")
def town() -> Town:
    """A small synthetic town (every source)."""
    return generate_town(n_children=300, seed=7)


@pytest.fixture(scope="session")
def agents(town: Town, tmp_path_factory: pytest.TempPathFactory) -> dict[str, SyntheticAgent]:
    """One stand-in agent per source, sharing the town's linkage secret and escrow key."""
    return synthetic_agents(sorted(town.sources), tmp_path_factory.mktemp("agents"))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None for the default SQLite file in the home, or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("fresh_postgres_url").render_as_string(hide_password=False)


def cli(args: list[str], env: dict[str, str] | None = None, input: str | None = None) -> str:
    """Run a `tsunagu` command in-process; fail the test with its output if it fails."""
    result = CliRunner().invoke(app, args, env=env, input=input)
    assert result.exit_code == 0, f"{args[:3]} → {result.exit_code}: {result.output}{result.exception!r}"
    return result.output


@dataclass
class Home:
    """A gateway home set up through the CLI: users per role, agents registered."""

    path: Path
    env: dict[str, str]
    agents: dict[str, SyntheticAgent] = field(default_factory=dict)

    def cli(self, *args: str, input: str | None = None) -> str:
        """Run ``tsunagu gateway <args> --home <path>``."""
        return cli(["gateway", *args, "--home", str(self.path)], env=self.env, input=input)


def _set_up(h: Home, agents: dict[str, SyntheticAgent]) -> None:
    """Set up ``h`` through the real CLI: init, one user per role, every agent registered."""
    key_id = next(iter(agents.values())).linkage.key_id
    cli(["gateway", "init", "--home", str(h.path), "--linkage-key-id", key_id], env=h.env)
    for role in ROLES:
        h.cli("user", "add", "--username", role, "--role", role, "--password-stdin", input=PASSWORD + "\n")
    for source, agent in agents.items():
        h.cli("agent", "register", "--agent-public", str(agent.public_file), "--network", agent.network, "--source", source)


class _Templates:
    """Homes set up once per session and database kind, copied for each test (the setup's six Argon2id hashes and
    the CLI run once, not per test): the folder is copied, the SQLite file with it (checkpointed first, so the copy
    holds everything), a PostgreSQL database is made with ``CREATE DATABASE … TEMPLATE``. The copies are the same
    bytes the CLI wrote, so a test sees the home it would have set up itself."""

    def __init__(self, root: Path, agents: dict[str, SyntheticAgent]) -> None:
        self._root, self._agents = root, agents
        self._made: dict[str, Home] = {}

    def _template(self, kind: str, request: pytest.FixtureRequest) -> Home:
        if kind not in self._made:
            env: dict[str, str] = {}
            if kind == "postgresql":
                from tests.support import postgres as _postgres

                url = _postgres.create_database(request.getfixturevalue("postgres_url"), "gateway_home_template")
                env = {"TSUNAGU_DATABASE_URL": url.render_as_string(hide_password=False)}
            h = Home(self._root / kind / "gateway", env, self._agents)
            _set_up(h, self._agents)
            if kind == "sqlite":
                _checkpoint(h.path / "gateway.db")
            self._made[kind] = h
        return self._made[kind]

    def copy(self, target: Path, database_url: str | None, request: pytest.FixtureRequest) -> Home:
        """A copy of the template at ``target``; on PostgreSQL, the database of ``database_url`` replaced by a copy."""
        template = self._template("postgresql" if database_url else "sqlite", request)
        shutil.copytree(template.path, target, symlinks=True, ignore=shutil.ignore_patterns("gateway.db-wal", "gateway.db-shm"))
        if database_url:
            from sqlalchemy.engine import make_url

            from tests.support import postgres as _postgres

            _postgres.clone_database(make_url(template.env["TSUNAGU_DATABASE_URL"]), make_url(database_url).database)
        return Home(target, {"TSUNAGU_DATABASE_URL": database_url} if database_url else {}, self._agents)


def _checkpoint(db: Path) -> None:
    """Move everything in the SQLite write-ahead log into the database file (the file alone is then the database)."""
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0, f"{db}: the checkpoint was blocked"
    finally:
        conn.close()


@pytest.fixture(scope="session")
def home_templates(tmp_path_factory: pytest.TempPathFactory, agents: dict[str, SyntheticAgent]) -> _Templates:
    """The session's prepared homes (one per database kind, made on first use)."""
    return _Templates(tmp_path_factory.mktemp("home-templates"), agents)


@pytest.fixture
def home(tmp_path: Path, database_url: str | None, home_templates: _Templates, request: pytest.FixtureRequest) -> Home:
    """A fresh gateway home with one user per role and every agent registered (a copy of the session's template)."""
    return home_templates.copy(tmp_path / "gateway", database_url, request)


@dataclass
class Server:
    """A running `tsunagu gateway serve`."""

    base_url: str
    home: Home
    process: subprocess.Popen
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, role: str | None = None, **kwargs: Any) -> httpx.Client:
        """An httpx client, signed in as ``role`` if given."""
        headers = {"Authorization": f"Bearer {self.token(role)}"} if role else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=300, **kwargs)

    def token(self, role: str) -> str:
        """A session token of the user holding ``role``."""
        if role not in self.tokens:
            with httpx.Client(base_url=self.base_url, timeout=300) as c:
                r = c.post("/api/v1/auth/login", json={"username": role, "password": PASSWORD})
                r.raise_for_status()
                self.tokens[role] = r.json()["access_token"]
        return self.tokens[role]


def start_server(home: Home, extra_env: dict[str, str] | None = None) -> Server:
    """Start the real server on a free port and wait until it answers."""
    env = {**os.environ, **home.env, "TSUNAGU_LINK_DEBOUNCE_SECONDS": "0.2", **(extra_env or {})}
    process, base = _server.start([TSUNAGU, "gateway", "serve", "--home", str(home.path)], "/api/v1/health",
                                  home.path / "logs" / "serve.out", env)
    return Server(base, home, process)


def stop_server(server: Server) -> None:
    """Stop the server gracefully (its shutdown waits for a link run in progress; a busy machine may need minutes)."""
    _server.stop(server.process, timeout=180)


@pytest.fixture
def server(home: Home) -> Iterator[Server]:
    """The real gateway server on the fresh home."""
    s = start_server(home)
    try:
        yield s
    finally:
        stop_server(s)


def wait_for_run(server: Server, runs_before: int = 0, timeout: float = 600) -> dict[str, Any]:
    """Wait until the gateway has linked everything it accepted (no run request waiting, none running) in a run
    newer than ``runs_before``; return that run. Waits on the gateway's state, not on time: the timeout only
    ends a test whose gateway never gets there."""
    deadline = time.monotonic() + timeout
    with server.client("admin") as c:
        while time.monotonic() < deadline:
            pending = c.get("/api/v1/runs/pending").json()
            if not pending["requests"] and not pending["running"]:
                runs = c.get("/api/v1/runs").json()
                done = [r for r in runs if r["status"] in ("done", "failed") and r["id"] > runs_before]
                if done:
                    assert done[0]["status"] == "done", (done[0], _log_tail(server))
                    return done[0]
            time.sleep(0.2)
    raise AssertionError(f"no linkage run finished in time: {_log_tail(server)}")


def _log_tail(server: Server) -> str:
    logs = server.home.path / "logs"
    return "\n".join((logs / name).read_text(encoding="utf-8", errors="replace")[-3000:]
                     for name in ("gateway.log", "serve.out") if (logs / name).exists())


@pytest.fixture
def gw(home: Home) -> Iterator[Any]:
    """The gateway of ``home`` opened in this process (for library-level tests)."""
    from gateway.core import Gateway

    url = home.env.get("TSUNAGU_DATABASE_URL")
    opened = Gateway.open(home.path, **({"database_url": url} if url else {}))
    try:
        yield opened
    finally:
        opened.close()


def submit_town(gw: Any, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    """Ingest every source of ``town`` through the gateway's ingest (as `tsunagu gateway import` does)."""
    from gateway.ingest import ingest

    for source, agent in agents.items():
        assert ingest(gw, agent.submit(source, town.sources[source]), "import").status == "accepted"
