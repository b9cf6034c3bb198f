"""Web UI test helpers and fixtures: the real gateway and escrow servers with a linked town, and real headless Chromium.

A key ceremony (``keys.keyring.init_municipality``, 3 of 5 custodians) makes
the escrow key; the stand-in agents seal to it. Setup goes through the real
CLI (``tsunagu gateway init``, ``user add --password-stdin``, ``agent
register``, ``tsunagu escrow init``/``user add``); the departments push real
signed submissions over HTTP; the servers are ``tsunagu gateway serve`` and
``tsunagu escrow serve`` (uvicorn) on free loopback ports, the gateway told
the escrow's URL. The browser is Debian's Chromium (``/usr/bin/chromium``),
driven through Playwright; without it the tests fail and say to run
``make chromium`` — they never skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from typer.testing import CliRunner

from synthetic.agents import SOURCE_NETWORK, SyntheticAgent
from keys.custody import Custodian
from keys.keyring import Keyring, init_municipality
from keys.linkage_secret import generate_linkage_secret
from keys.passphrase import KdfParams
from synthetic import Town
from tests.support import server as _server
from tests.support.gateway import town  # noqa: F401 - the site's town is the gateway tests' town (a fixture)
from tsunagu.cli import app

# Assertions wait generously: the suite must pass on a busy two-core machine (no timing luck).
expect.set_options(timeout=60_000)
CHROMIUM = Path("/usr/bin/chromium")
DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "policy" / "default_policy.toml"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse battery staple"
ROLES = ("admin", "caseworker", "approver", "custodian", "auditor", "analyst")
TSUNAGU = str(Path(sys.executable).with_name("tsunagu"))
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
# A share is its custodian's only (the escrow checks the share's name against the login): the first is the "custodian" user's.
CUSTODIANS = [Custodian("custodian", "custodian pass 1"), *[Custodian(f"custodian{i}", f"custodian pass {i}") for i in range(2, 6)]]
#: Escrow users: the same names as at the gateway (the escrow checks that the requester files their own request).
ESCROW_USERS = {"caseworker": "caseworker", "approver": "approver", "custodian": "custodian", "auditor": "auditor"}
_FAST = KdfParams(memory_kib=1024, iterations=1, lanes=1)  # small but real Argon2id for the ceremony's shares


def cli(args: list[str], input: str | None = None) -> str:
    """Run a `tsunagu` command in-process; fail the test with its output if it fails."""
    result = CliRunner().invoke(app, args, input=input)
    assert result.exit_code == 0, f"{args[:3]} → {result.exit_code}: {result.output}{result.exception!r}"
    return result.output


@dataclass
class Site:
    """A running gateway with a linked town, and its escrow: homes, base URLs, agents and the custodians' share files."""

    home: Path
    base_url: str
    agents: dict[str, SyntheticAgent]
    escrow_url: str
    share_files: list[Path]

    def api(self, role: str) -> httpx.Client:
        """A gateway API client signed in as the user holding ``role``."""
        return _signed_in(self.base_url, role)

    def escrow(self, username: str) -> httpx.Client:
        """An escrow API client signed in as ``username`` (the escrow's own user store)."""
        return _signed_in(self.escrow_url, username)

    def add_user(self, username: str, role: str) -> None:
        """Create one more user through the CLI."""
        cli(["gateway", "user", "add", "--home", str(self.home), "--username", username, "--role", role, "--password-stdin"],
            input=PASSWORD + "\n")


def _signed_in(base_url: str, username: str) -> httpx.Client:
    r = httpx.post(f"{base_url}/api/v1/auth/login", json={"username": username, "password": PASSWORD}, timeout=300)
    r.raise_for_status()
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {r.json()['access_token']}"}, timeout=300)


def serve(args: list[str], ready: str, log: Path, env: dict[str, str], *, scheme: str = "http",
          verify: Any = True) -> tuple[subprocess.Popen, str]:
    """Start ``tsunagu <args> --port <free>`` and wait until ``GET <ready>`` answers 200; returns the process and base URL."""
    return _server.start([TSUNAGU, *args], ready, log, {**os.environ, **env}, scheme=scheme, verify=verify)


def wait_for_run(site: Site, after: int = 0, timeout: float = 600) -> dict[str, Any]:
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
def site(town: Town, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The real escrow and gateway: set up through the CLI, fed real signed submissions over HTTP, linked once.

    One for the gateway's and the escrow's web tests: the fixture is imported once, by tests/integration/conftest.py
    (pytest makes one instance of a session fixture per conftest that declares it)."""
    root = tmp_path_factory.mktemp("web")
    ceremony = init_municipality(root / "keys", "000000", CUSTODIANS, 3, "operator pass 1", _FAST)
    linkage = generate_linkage_secret()
    escrow_key = Keyring(root / "keys").escrow_public()
    agents = {s: SyntheticAgent(f"agent-{s}-{os.urandom(3).hex()}", SOURCE_NETWORK[s], linkage, escrow_key, root / f"agent-{s}")
              for s in sorted(town.sources)}

    home = root / "gateway"
    shown = cli(["gateway", "init", "--home", str(home), "--linkage-key-id", linkage.key_id])
    verifier = root / "gateway-verifier.txt"
    verifier.write_text(shown.split("監査ログの検証鍵: ")[1].split()[0] + "\n", encoding="utf-8")
    for role in ROLES:
        cli(["gateway", "user", "add", "--home", str(home), "--username", role, "--role", role, "--password-stdin"],
            input=PASSWORD + "\n")
    for source, agent in agents.items():
        cli(["gateway", "agent", "register", "--home", str(home), "--agent-public", str(agent.public_file),
             "--network", agent.network, "--source", source])

    escrow_home = root / "escrow"
    # With the gateway's policy, as production should run: the escrow checks purposes itself and shows their labels.
    cli(["escrow", "init", "--home", str(escrow_home), "--from-keys", str(root / "keys"), "--gateway-verifier", str(verifier),
         "--policy", str(DEFAULT_POLICY)])
    for username, role in ESCROW_USERS.items():
        cli(["escrow", "user", "add", "--home", str(escrow_home), "--username", username, "--role", role, "--password-stdin"],
            input=PASSWORD + "\n")

    processes: list[subprocess.Popen] = []
    try:
        escrow, escrow_url = serve(["escrow", "serve", "--home", str(escrow_home)], "/api/v1/status", root / "escrow.out", {})
        processes.append(escrow)
        gateway, base_url = serve(["gateway", "serve", "--home", str(home)], "/api/v1/health", root / "gateway.out",
                                   {"TSUNAGU_LINK_DEBOUNCE_SECONDS": "0.2", "TSUNAGU_ESCROW_URL": escrow_url})
        processes.append(gateway)
        s = Site(home, base_url, agents, escrow_url, list(ceremony.share_files))
        for source, agent in agents.items():
            r = httpx.post(f"{base_url}/api/v1/submissions", content=agent.submit(source, town.sources[source]),
                           headers={"Content-Type": "application/x-ndjson"}, timeout=300)
            assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
        wait_for_run(s)
        yield s
    finally:
        for process in reversed(processes):
            _server.stop(process)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Chromium (Debian's), driven through Playwright's Python API."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} がありません。run make chromium（Debian の chromium パッケージを入れます）", pytrace=False)
    with sync_playwright() as p:  # once per process: a second sync Playwright in the same thread fails

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
    ctx.set_default_timeout(60_000)
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
