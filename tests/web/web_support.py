"""Web UI test helpers and fixtures: the real gateway server with a linked town, and real headless Chromium driven by Playwright.

Setup goes through the real CLI (``tsunagu gateway init``, ``user add
--password-stdin``, ``agent register``); the town's departments push real
signed submissions over HTTP; the server is ``tsunagu gateway serve``
(uvicorn) on a free loopback port. The browser is Debian's Chromium
(``/usr/bin/chromium``); without it the tests fail and say to run
``make chromium`` — they never skip.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from typer.testing import CliRunner

from gateway.synthetic import SyntheticAgent, synthetic_agents
from linkage.synthetic import Town, generate_town
from tsunagu.cli import app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse battery staple"
ROLES = ("admin", "caseworker", "approver", "custodian", "auditor", "analyst")
TSUNAGU = str(Path(sys.executable).with_name("tsunagu"))
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def cli(args: list[str], input: str | None = None) -> str:
    """Run a `tsunagu` command in-process; fail the test with its output if it fails."""
    result = CliRunner().invoke(app, args, input=input)
    assert result.exit_code == 0, f"{args[:3]} → {result.exit_code}: {result.output}{result.exception!r}"
    return result.output


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Site:
    """A running gateway with a linked town: its home, base URL and agents."""

    home: Path
    base_url: str
    process: subprocess.Popen
    agents: dict[str, SyntheticAgent]

    def api(self, role: str) -> httpx.Client:
        """An API client signed in as the user holding ``role``."""
        r = httpx.post(f"{self.base_url}/api/v1/auth/login", json={"username": role, "password": PASSWORD}, timeout=30)
        r.raise_for_status()
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {r.json()['access_token']}"}, timeout=60)

    def add_user(self, username: str, role: str) -> None:
        """Create one more user through the CLI."""
        cli(["gateway", "user", "add", "--home", str(self.home), "--username", username, "--role", role, "--password-stdin"],
            input=PASSWORD + "\n")


def _wait_until_up(process: subprocess.Popen, base: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("server did not start within 60 s")


def wait_for_run(site: Site, after: int = 0, timeout: float = 120) -> dict[str, Any]:
    """Wait until a linkage run with an id above ``after`` is done; return it."""
    deadline = time.monotonic() + timeout
    with site.api("admin") as c:
        while time.monotonic() < deadline:
            runs = c.get("/api/v1/runs").json()
            done = [r for r in runs if r["status"] in ("done", "failed") and r["id"] > after]
            if done and not [r for r in runs if r["status"] == "running"]:
                assert done[0]["status"] == "done", done[0]
                return done[0]
            time.sleep(0.2)
    raise AssertionError("no linkage run finished in time")


@pytest.fixture(scope="session")
def town() -> Town:
    """A small synthetic town (every source); 300 children give a few review pairs."""
    return generate_town(n_children=300, seed=7)


@pytest.fixture(scope="session")
def site(town: Town, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The real gateway: set up through the CLI, fed real signed submissions over HTTP, linked once."""
    root = tmp_path_factory.mktemp("web")
    agents = synthetic_agents(sorted(town.sources), root / "agents")
    home = root / "gateway"
    cli(["gateway", "init", "--home", str(home), "--linkage-key-id", next(iter(agents.values())).linkage.key_id])
    for role in ROLES:
        cli(["gateway", "user", "add", "--home", str(home), "--username", role, "--role", role, "--password-stdin"],
            input=PASSWORD + "\n")
    for source, agent in agents.items():
        cli(["gateway", "agent", "register", "--home", str(home), "--agent-public", str(agent.public_file),
             "--network", agent.network, "--source", source])
    port = free_port()
    log = home / "logs" / "serve.out"
    env = {**os.environ, "TSUNAGU_LINK_DEBOUNCE_SECONDS": "0.2"}
    process = subprocess.Popen([TSUNAGU, "gateway", "serve", "--home", str(home), "--port", str(port)],
                               env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    s = Site(home, f"http://127.0.0.1:{port}", process, agents)
    try:
        _wait_until_up(process, s.base_url, log)
        for source, agent in agents.items():
            r = httpx.post(f"{s.base_url}/api/v1/submissions", content=agent.submit(source, town.sources[source]),
                           headers={"Content-Type": "application/x-ndjson"}, timeout=60)
            assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
        wait_for_run(s)
        yield s
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Chromium (Debian's), driven through Playwright's Python API."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} がありません。run make chromium（Debian の chromium パッケージを入れます）", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def context(browser: Browser, site: Site) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) for one test, pointed at the site."""
    ctx = browser.new_context(base_url=site.base_url, locale="ja-JP", viewport={"width": 1280, "height": 900},
                              accept_downloads=True)
    ctx.set_default_timeout(20_000)
    try:
        yield ctx
    finally:
        ctx.close()


def log_in(page: Page, username: str, password: str = PASSWORD) -> None:
    """Sign in through the login form, as a person would (label → field, then the button)."""
    page.goto("/ui/login")
    page.get_by_label("利用者名").fill(username)
    page.get_by_label("パスワード").fill(password)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_load_state()


def shot(page: Page, name: str) -> None:
    """Save a full-page screenshot to test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
