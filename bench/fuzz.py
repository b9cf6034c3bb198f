"""Property-based fuzzing of both services' OpenAPI documents (schemathesis) against the real servers on loopback.

    python -m bench.fuzz [--requests 10000] [--seed 1] [--service gateway|escrow|both] [--work DIR]

A throwaway deployment is set up in ``--work`` (a key ceremony with small but
real Argon2id parameters, a gateway home and an escrow home, one user per
role), both services are started with their own ``serve`` commands on free
loopback ports, and schemathesis generates requests from each service's
``/openapi.json``: for every operation, valid (``positive``) and invalid
(``negative``) ones, each sent unauthenticated and with the session of every
role. The figure printed is the number of server errors (5xx or a dropped
connection); it must be 0. The test suite runs the same code with a small
budget (``tests/test_fuzz_openapi.py``).

Left out for signed-in roles only (still fuzzed unauthenticated): logging out
(it would end the fuzzer's own session) and starting a linkage run (each
spawns a process; hundreds would only measure the machine).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PASSWORD = "fuzzing only: correct horse battery staple"
GATEWAY_ROLES = ("admin", "caseworker", "approver", "auditor")
ESCROW_USERS = {"admin": ["admin"], "tanaka": ["caseworker"], "sato": ["approver"], "kato": ["auditor"], "custodian1": ["custodian"]}
#: (method, path) never sent with a session (see the module docstring)
SIGNED_IN_EXCLUDED = {("POST", "/api/v1/auth/logout"), ("POST", "/api/v1/runs")}
#: at most this many rounds over every operation to spend the budget
_ROUNDS = 5


@dataclass
class FuzzReport:
    """What one service answered: requests sent, server errors, and the first few of them to look at."""

    service: str
    requests: int = 0
    server_errors: int = 0
    operations: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        """One line for people: the figures of this run."""
        return (f"fuzz {self.service}: {self.requests} 要求（{self.operations} 操作 × 未認証・各ロール）、"
                f"サーバーエラー {self.server_errors} 件、{self.seconds:.0f} 秒")


@dataclass
class Deployment:
    """The two running services and a session header per role."""

    work: Path
    gateway_url: str
    escrow_url: str
    gateway_headers: dict[str, dict[str, str]]
    escrow_headers: dict[str, dict[str, str]]
    processes: list[subprocess.Popen]

    def stop(self) -> None:
        """Stop both services."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def deploy(work: Path) -> Deployment:
    """Set up a gateway and an escrow in ``work`` and start both (the caller stops them)."""
    from escrow.identity import add_user as add_escrow_user
    from escrow.service import init_home
    from gateway.core import Gateway
    from gateway.identity import add_user
    from keys.custody import Custodian
    from keys.keyring import Keyring, init_municipality
    from keys.passphrase import KdfParams

    fast = KdfParams(memory_kib=1024, iterations=1, lanes=1)
    init_municipality(work / "keys", "131016", [Custodian(f"custodian{i}", f"custodian pass {i}") for i in (1, 2)], 2,
                      "operator pass 1", fast)
    home = work / "gateway"
    home.mkdir(parents=True, mode=0o700)
    (home / "gateway.toml").write_text(f'linkage_key_id = "{Keyring(work / "keys").current_linkage_key_id}"\n', encoding="utf-8")
    gw = Gateway.open(home)
    for role in GATEWAY_ROLES:
        add_user(gw, role, role, PASSWORD)
    vkey = gw.signer.verifier.vkey()
    gw.close()
    escrow = init_home(work / "escrow", work / "keys", vkey)
    for username, roles in ESCROW_USERS.items():
        add_escrow_user(escrow.engine, username, roles, PASSWORD)
    escrow.close()
    tsunagu = str(Path(sys.executable).with_name("tsunagu"))
    processes, urls = [], []
    for kind, folder in (("gateway", home), ("escrow", work / "escrow")):
        port = _free_port()
        log = (work / f"{kind}.out").open("wb")
        processes.append(subprocess.Popen([tsunagu, kind, "serve", "--home", str(folder), "--port", str(port)],
                                          stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TSUNAGU_HOME": str(folder),
                                                                                       # the fuzzer's sessions outlive a long run
                                                                                       "TSUNAGU_ESCROW_SESSION_MINUTES": "1440"}))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        _wait(urls[0] + "/api/v1/health", processes[0])
        _wait(urls[1] + "/api/v1/status", processes[1])
        gateway_headers = {"unauthenticated": {}, **{r: _session(urls[0], r) for r in GATEWAY_ROLES}}
        escrow_headers = {"unauthenticated": {}, **{u: _session(urls[1], u) for u in ESCROW_USERS}}
    except BaseException:
        for process in processes:
            process.kill()
        raise
    return Deployment(work, urls[0], urls[1], gateway_headers, escrow_headers, processes)


def fuzz(service: str, base_url: str, variants: dict[str, dict[str, str]], budget: int, seed: int = 1) -> FuzzReport:
    """Send about ``budget`` generated requests to ``base_url`` (spread over its operations, modes and ``variants``)."""
    import schemathesis
    from schemathesis.generation.modes import GenerationMode

    # The gateway's submissions are JSON Lines bytes ({"type": "string", "format": "binary"}): sent as generated bytes.
    schemathesis.serializer.alias("application/x-ndjson", "application/octet-stream")
    report = FuzzReport(service)
    started = time.monotonic()
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    report.operations = len(operations)
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    per_case = len(variants)
    session = _requests_session()
    # Hypothesis stops early on operations with little to vary, so rounds with new seeds go on until the budget is spent.
    for round_number in range(_ROUNDS):
        remaining = budget - report.requests
        if remaining <= 0:
            break
        examples = max(1, -(-remaining // max(1, len(operations) * len(modes) * per_case)))  # rounded up
        for operation in operations:
            for mode in modes:
                _fuzz_operation(report, operation, mode, examples, seed + round_number, base_url, session, variants)
    report.seconds = time.monotonic() - started
    return report


def _fuzz_operation(report: FuzzReport, operation: Any, mode: Any, examples: int, seed: int, base_url: str, session: Any,
                    variants: dict[str, dict[str, str]]) -> None:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    try:
        strategy = operation.as_strategy(generation_mode=mode)
    except Exception:  # noqa: BLE001 - schemathesis cannot build negative data for some operations
        return

    @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck), derandomize=False, print_blob=False)
    @given(case=strategy)
    def _send(case: Any) -> None:
        for label, headers in variants.items():
            if headers and (case.method.upper(), operation.path) in SIGNED_IN_EXCLUDED:
                continue
            _send_one(report, case, base_url, session, label, headers)

    try:
        hypothesis_seed(seed)(_send)()
    except Exception as exc:  # noqa: BLE001 - generation gave up (Unsatisfiable …): not a server error
        if "Unsatisfiable" not in type(exc).__name__ and "InvalidArgument" not in type(exc).__name__:
            report.examples.append(f"{operation.method.upper()} {operation.path}: generation stopped ({type(exc).__name__})")


def _send_one(report: FuzzReport, case: Any, base_url: str, session: Any, label: str, headers: dict[str, str]) -> None:
    report.requests += 1
    try:
        response = case.call(base_url=base_url, session=session, headers=dict(headers), timeout=60)
    except Exception as exc:  # noqa: BLE001 - a dropped connection is a server error too
        status, text = 599, f"{type(exc).__name__}: {exc}"
    else:
        status, text = response.status_code, response.text[:200]
    report.statuses[status] = report.statuses.get(status, 0) + 1
    if status >= 500:
        report.server_errors += 1
        if len(report.examples) < 20:
            report.examples.append(f"{case.method.upper()} {case.formatted_path} [{label}] → {status}: {text}")


def _requests_session() -> Any:
    import requests

    return requests.Session()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the service exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url}: no answer within {seconds:.0f} s")


def _session(base_url: str, username: str) -> dict[str, str]:
    r = httpx.post(f"{base_url}/api/v1/auth/login", json={"username": username, "password": PASSWORD}, timeout=60)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def main(argv: list[str] | None = None) -> int:
    """Fuzz both services; print the figures; exit 1 if any server error was seen."""
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description="両サービスの OpenAPI に基づくファジング（サーバーエラーの件数を表示）")
    parser.add_argument("--requests", type=int, default=10_000, help="サービスごとのおおよその要求数")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--service", choices=["gateway", "escrow", "both"], default="both")
    parser.add_argument("--work", type=Path, help="作業フォルダ（既定: 一時フォルダ）")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="tsunagu-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"作業フォルダ: {work}（CPU {os.cpu_count()} コア）", flush=True)
    deployment = deploy(work)
    errors = 0
    try:
        targets = [("gateway", deployment.gateway_url, deployment.gateway_headers), ("escrow", deployment.escrow_url, deployment.escrow_headers)]
        for name, url, headers in targets:
            if args.service not in (name, "both"):
                continue
            report = fuzz(name, url, headers, args.requests, args.seed)
            print(report.line(), flush=True)
            print(f"  応答コード: {dict(sorted(report.statuses.items()))}", flush=True)
            for example in report.examples:
                print(f"  {example}", flush=True)
            errors += report.server_errors
    finally:
        deployment.stop()
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
