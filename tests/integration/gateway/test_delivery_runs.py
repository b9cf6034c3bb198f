"""Linkage runs are never lost (issue #15, build 4): the request is in the database with the data, on SQLite and PostgreSQL.

Real server (uvicorn in a subprocess), real database; the waits are on the
gateway's state (``GET /api/v1/runs/pending``), never on a fixed time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sqlalchemy import func, select

from gateway import models, review
from gateway.core import Gateway
from gateway.identity import User
from gateway.ingest import ingest
from gateway.link import run_linkage
from synthetic.agents import SyntheticAgent
from tests.support import server as _server
from tests.support.gateway import Home, Server, start_server, stop_server, wait_for_run
from synthetic import Town

NDJSON = {"Content-Type": "application/x-ndjson"}


def _open(home: Home) -> Gateway:
    url = home.env.get("TSUNAGU_DATABASE_URL")
    return Gateway.open(home.path, **({"database_url": url} if url else {}))


def _requests(home: Home) -> int:
    gw = _open(home)
    try:
        with gw.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(models.link_requests)).scalar()
    finally:
        gw.close()


def test_gateway_killed_right_after_accepting_still_links_after_restart(home: Home, town: Town,
                                                                       agents: dict[str, SyntheticAgent]) -> None:
    # A debounce far longer than the test: the run cannot have happened before the kill.
    server = start_server(home, {"TSUNAGU_LINK_DEBOUNCE_SECONDS": "86400"})
    try:
        with server.client() as c:
            for source, agent in agents.items():
                r = c.post("/api/v1/submissions", content=agent.submit(source, town.sources[source]), headers=NDJSON)
                assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
    finally:
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
    assert _requests(home) == len(agents)  # the requests committed with the submissions

    restarted = start_server(home)
    try:
        run = wait_for_run(restarted)
        assert run["records"] == sum(len(town.sources[s]) for s in agents)
        assert _requests(home) == 0
    finally:
        stop_server(restarted)


def test_gateway_that_starts_with_unlinked_submissions_runs(home: Home, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    gw = _open(home)
    try:
        for source, agent in agents.items():  # as `tsunagu gateway import` does, with no server running
            assert ingest(gw, agent.submit(source, town.sources[source]), "import").status == "accepted"
    finally:
        gw.close()
    server = start_server(home)
    try:
        assert wait_for_run(server)["records"] == sum(len(town.sources[s]) for s in agents)
    finally:
        stop_server(server)


def test_submission_during_a_run_is_linked_by_the_next_run(server: Server, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    sources = sorted(agents)
    first, rest = sources[:1], sources[1:]
    with server.client() as c:
        for source in first:
            c.post("/api/v1/submissions", content=agents[source].submit(source, town.sources[source]), headers=NDJSON).raise_for_status()
    with server.client("admin") as admin:
        # Submit the rest as soon as the first run is going (or already done: either way none may be dropped; the
        # deadline only bounds the wait, nothing is asserted about when the run started).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = admin.get("/api/v1/runs/pending").json()
            if state["running"] or not state["requests"]:
                break
            time.sleep(0.1)
    with server.client() as c:
        for source in rest:
            c.post("/api/v1/submissions", content=agents[source].submit(source, town.sources[source]), headers=NDJSON).raise_for_status()
    last = wait_for_run(server)
    assert last["records"] == sum(len(town.sources[s]) for s in sources)
    log = (server.home.path / "logs" / "gateway.log").read_text(encoding="utf-8")
    assert "maximum number of running instances" not in log


def _triggers(home: Home) -> list[str]:
    gw = _open(home)
    try:
        with gw.engine.connect() as conn:
            return list(conn.execute(select(models.link_requests.c.trigger).order_by(models.link_requests.c.id)).scalars())
    finally:
        gw.close()


def test_a_run_asked_for_is_stored_and_survives_a_gateway_that_dies_before_running_it(home: Home, town: Town,
                                                                                      agents: dict[str, SyntheticAgent]) -> None:
    gw = _open(home)
    try:
        for source, agent in agents.items():
            assert ingest(gw, agent.submit(source, town.sources[source]), "import").status == "accepted"
        run_linkage(gw)  # linked: nothing waits
    finally:
        gw.close()
    assert _triggers(home) == []
    # Every run process this server starts dies as it begins (as with a power cut): only the stored request can
    # make the asked-for run happen.
    server = start_server(home, {"TSUNAGU_TEST_CRASH_AT": "link.after_start"})
    try:
        with server.client("admin") as admin:
            r = admin.post("/api/v1/runs")
            assert r.status_code == 202 and r.json() == {"status": "requested"}
    finally:
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
    assert _triggers(home) == ["api:admin"]

    restarted = start_server(home)
    try:
        run = wait_for_run(restarted, runs_before=1)
        assert run["trigger"] == "api:admin" and run["records"] == sum(len(town.sources[s]) for s in agents)
        assert _triggers(home) == []
    finally:
        stop_server(restarted)


def test_a_review_decision_asks_for_the_run_it_binds_in_its_own_transaction(home: Home, town: Town,
                                                                           agents: dict[str, SyntheticAgent]) -> None:
    gw = _open(home)
    try:
        for source, agent in agents.items():
            assert ingest(gw, agent.submit(source, town.sources[source]), "import").status == "accepted"
        run_linkage(gw)
        pair = review.review_pairs(gw)["pairs"][0]
        assert _triggers(home) == []
        review.decide_pair(gw, User(2, "caseworker", "caseworker"), pair["id"], "non_link", "別人と確認（テスト）")
    finally:
        gw.close()
    assert _triggers(home) == ["review"]


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie nobody reaped yet counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


#: A safety net for the waits on a process: a busy two-core machine can take minutes; each wait ends as soon as it can.
_PROCESS_DEADLINE = 300


def _wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + _PROCESS_DEADLINE
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.1)
    return _gone(pid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_run_process_ends_with_the_server_that_started_it(tmp_path: Path) -> None:
    # A stand-in server: starts a bound process as the scheduler starts a linkage run, says its pid, then is SIGKILLed.
    script = ("import sys, time\nfrom gateway.runprocess import start_bound\n"
              "p = start_bound(time.sleep, (3600,), 'tsunagu-link')\nprint(p.pid, flush=True)\ntime.sleep(3600)\n")
    server = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=tmp_path,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        run = int(server.stdout.readline())  # type: ignore[union-attr]
        assert not _gone(run)
    finally:
        server.kill()
        server.wait()
    assert _wait_gone(run)


def test_a_server_stop_ends_the_run_and_its_workers() -> None:
    from gateway.runprocess import end_process_group, start_bound

    run = start_bound(time.sleep, (3600,), "tsunagu-link")
    try:
        deadline = time.monotonic() + _PROCESS_DEADLINE
        while os.getpgid(run.pid) != run.pid and time.monotonic() < deadline:
            time.sleep(0.1)  # the process group exists once the process has started running Python
        assert os.getpgid(run.pid) == run.pid  # it leads a group of its own: the matcher's workers are in it
        end_process_group(run)
        run.join(timeout=_PROCESS_DEADLINE)
        assert run.exitcode == -signal.SIGTERM
    finally:
        if run.is_alive():
            run.kill()
            run.join()


# A server without the scheduler (``create_app(gw, jobs=False)``), served by the real uvicorn: its "run now" starts the
# run itself (gateway.link.ServerRuns).
_NO_SCHEDULER = ("import sys, uvicorn\nfrom pathlib import Path\nfrom gateway.api.main import create_app\n"
                 "from gateway.core import Gateway\n"
                 "uvicorn.run(create_app(Gateway.open(Path(sys.argv[1])), jobs=False), host='127.0.0.1', port=int(sys.argv[3]),"
                 " log_level='warning')\n")


def _start_without_scheduler(home: Home, extra_env: dict[str, str]) -> Server:
    env = {**os.environ, **home.env, **extra_env, "PYTHONPATH": os.pathsep.join(sys.path)}
    process, base = _server.start([sys.executable, "-c", _NO_SCHEDULER, str(home.path)], "/api/v1/health",
                                  home.path / "logs" / "serve-no-scheduler.out", env)
    return Server(base, home, process)


def _run_processes(server_pid: int) -> list[int]:
    """The server's children that are linkage runs (spawned processes; not multiprocessing's resource tracker)."""
    children: list[int] = []
    for task in Path(f"/proc/{server_pid}/task").iterdir():
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    runs = []
    for pid in children:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in command and not _gone(pid):
            runs.append(pid)
    return runs


def _held_run(server: Server) -> int:
    """Ask for a run and wait until it is going (held at its start by ``hold:link.after_start``); its pid."""
    with server.client("admin") as admin:
        r = admin.post("/api/v1/runs")
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + _PROCESS_DEADLINE
        while time.monotonic() < deadline:
            found = _run_processes(server.process.pid)
            if found and admin.get("/api/v1/runs/pending").json()["running"]:
                assert len(found) == 1, found
                return found[0]
            time.sleep(0.2)
    raise AssertionError("the requested run did not start")


_HOLD = {"TSUNAGU_TEST_CRASH_AT": "hold:link.after_start"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_run_asked_for_without_a_scheduler_ends_with_the_killed_server_and_runs_after_restart(
        home: Home, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    gw = _open(home)
    try:
        for source, agent in agents.items():
            assert ingest(gw, agent.submit(source, town.sources[source]), "import").status == "accepted"
        run_linkage(gw)
    finally:
        gw.close()
    server = _start_without_scheduler(home, _HOLD)
    try:
        run = _held_run(server)
        assert os.getpgid(run) == run  # a process group of its own: the matcher's workers are ended with it
    finally:
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
    assert _wait_gone(run)  # PR_SET_PDEATHSIG: the kernel ended it with the server
    assert _triggers(home) == ["api:admin"]  # the request outlives the run that did not commit

    restarted = start_server(home)  # the run lock went with the killed run: the next start runs the request
    try:
        last = wait_for_run(restarted, runs_before=1)
        assert last["trigger"] == "api:admin" and last["records"] == sum(len(town.sources[s]) for s in agents)
        assert _triggers(home) == []
    finally:
        stop_server(restarted)


def test_a_server_without_a_scheduler_ends_its_run_when_stopped(home: Home) -> None:
    server = _start_without_scheduler(home, _HOLD)
    try:
        run = _held_run(server)
        server.process.terminate()  # a graceful stop: it must not wait for the run (held for ever here)
        server.process.wait(timeout=_PROCESS_DEADLINE)
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
    assert _wait_gone(run)
    assert _triggers(home) == ["api:admin"]
