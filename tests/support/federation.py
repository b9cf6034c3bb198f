"""Federation test helpers: gateways set up through the real CLI and served by the real `tsunagu gateway serve`."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from typer.testing import CliRunner

from tests.support import server as _server
from tsunagu.cli import app

PASSWORD = "correct horse battery staple"
TSUNAGU = str(Path(sys.executable).with_name("tsunagu"))


def cli(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> str:
    """Run a `tsunagu` command in-process; fail the test with its output if it fails."""
    result = CliRunner().invoke(app, list(args), input=input, env=env)
    assert result.exit_code == 0, f"{args[:3]} → {result.exit_code}: {result.output}{result.exception!r}"
    return result.output


@dataclass
class Town:
    """One municipality's gateway: home, code, port, the running server and session tokens."""

    code: str
    home: Path
    port: int = field(default_factory=_server.free_port)
    process: subprocess.Popen | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    #: environment of its commands and server (TSUNAGU_DATABASE_URL for PostgreSQL)
    env: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str, input: str | None = None) -> str:
        """Run ``tsunagu <args> --home <home>`` with this gateway's environment."""
        return cli(*args, "--home", str(self.home), input=input, env=self.env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start `tsunagu gateway serve` and wait until it answers."""
        env = {**os.environ, "TSUNAGU_LINK_INTERVAL_MINUTES": "0", **self.env}
        self.process, _ = _server.start([TSUNAGU, "gateway", "serve", "--home", str(self.home)], "/api/v1/health",
                                        self.home / "logs" / "serve.out", env, port=self.port)

    def stop(self) -> None:
        """Stop the server."""
        if self.process is not None:
            _server.stop(self.process)

    def client(self, role: str | None = None) -> httpx.Client:
        """An httpx client, signed in as the user named after ``role``."""
        if role and role not in self.tokens:
            r = httpx.post(f"{self.url}/api/v1/auth/login", json={"username": role, "password": PASSWORD}, timeout=300)
            r.raise_for_status()
            self.tokens[role] = r.json()["access_token"]
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)
