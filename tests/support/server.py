"""The one way tests start a real server: ``tsunagu … serve`` (uvicorn) on a free loopback port, waited for until healthy.

Every integration test that talks to a service over HTTP starts it through
:func:`start` and stops it through :func:`stop`; :func:`free_port` is the one
free-port helper. The waits are safety nets, not timings: a busy two-core
machine can take minutes to start a server, so the test fails only when the
process has exited or the deadline has passed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Sequence

import httpx

#: How long a server may take to answer its health route (a safety net only).
START_TIMEOUT = 300


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(command: Sequence[str], ready: str, log: Path, env: dict[str, str], *, port: int | None = None,
          scheme: str = "http", verify: Any = True, method: str = "GET",
          status: int | None = 200) -> tuple[subprocess.Popen[bytes], str]:
    """Run ``command --port <port>`` (a free port unless given) and wait until ``<method> <ready>`` answers ``status``.

    ``status=None`` waits for any HTTP answer (a route that refuses an empty
    request still shows the server is up). Returns the process and its base
    URL. The server's output goes to ``log``; when the process exits before
    it is ready, the test fails with that output.
    """
    port = port or free_port()
    with log.open("wb") as out:
        process = subprocess.Popen([*command, "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{' '.join(command[1:3])} exited: {log.read_text(errors='replace')}")
        try:
            answer = httpx.request(method, f"{base}{ready}", timeout=300, verify=verify)
            if status is None or answer.status_code == status:
                return process, base
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    process.wait()
    raise AssertionError(f"{' '.join(command[1:3])} did not answer {ready} within {START_TIMEOUT} s: {log.read_text(errors='replace')}")


def stop(process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Stop a server gracefully (SIGTERM), killing it if it has not exited after ``timeout`` seconds.

    Returns once the server and every process it started (a linkage run and its workers) are gone, so a test that
    reads the server's home afterwards never meets a process still writing there (SQLite removing its -wal file,
    a run finishing its commit). Those processes end with the server (a run dies with it, PR_SET_PDEATHSIG); the
    wait only lets them get there on a busy machine, and kills what is left after the deadline.
    """
    started = descendants(process.pid)
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    wait_gone(started, timeout)


#: A process as /proc names it: pid and start time (so a pid used again by another process is not taken for it).
Proc = tuple[int, int]


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def descendants(pid: int) -> list[Proc]:
    """The processes under ``pid`` (children, their children, …), as far as /proc shows them now (Linux)."""
    found: list[Proc] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except (FileNotFoundError, ProcessLookupError):
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
            for child in children:
                stat = _stat(child)
                if stat is not None and (child, int(stat[19])) not in found:
                    found.append((child, int(stat[19])))
                    todo.append(child)
    return found


def gone(proc: Proc) -> bool:
    """Whether the process has ended (a zombie nobody reaped yet counts as ended)."""
    stat = _stat(proc[0])
    return stat is None or stat[0] == "Z" or int(stat[19]) != proc[1]


def wait_gone(procs: list[Proc], timeout: float = 120) -> None:
    """Wait until every process of ``procs`` has ended; kill those still there after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(gone(p) for p in procs):
        time.sleep(0.1)
    for proc in procs:
        if not gone(proc):
            try:
                os.kill(proc[0], signal.SIGKILL)
            except ProcessLookupError:
                pass
