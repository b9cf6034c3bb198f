"""Background jobs of a running gateway: linkage runs as the database asks for them, retention, the drop folder.

Linkage runs are driven by the persisted run requests (``gateway.link``),
not by timers held in memory: a worker thread looks at ``link_requests``
whenever a submission is accepted or someone asks for a run (and every few
seconds, for imports made by the CLI or another process, and review
decisions), waits ``link_debounce_seconds`` after the newest request (not for
a "run now" from the API or the web UI), and runs. A request made while a run goes on stays in the
table and causes the next run, so no run is dropped ("maximum number of
running instances reached" cannot happen here), and a gateway that starts
with requests left over from before a crash runs them.

A run lives no longer than the server that started it (``gateway.runprocess``). A graceful stop ends
the run process (SIGTERM to its process group, which holds the matcher's
workers too) instead of waiting for it, and on Linux a server that dies
(SIGKILL, a crash) takes its run with it (``PR_SET_PDEATHSIG``). Ending a run
loses nothing: its requests stay in ``link_requests`` until the run commits,
the run's writes are one transaction, and ``link.lock`` is an ``flock`` the
kernel releases with the process, so the next start runs it again. An
orphaned run would instead keep the CPU and the database busy after the
service was stopped (for a backup, an upgrade, a database restart), and make
the restarted server's runs wait behind it.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from datetime import timedelta, timezone
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from sqlalchemy import func, select

from gateway import models
from gateway.core import Gateway
from gateway.db import checkpoint, utcnow
from gateway.dropfolder import process_folder
from gateway.link import BUSY_RETRY_SECONDS, MANUAL_TRIGGERS, RUN_IN_PROGRESS, _child as _run_linkage_child, pending_requests, request_run
from gateway.retention import purge
from gateway.runprocess import end_process_group, start_bound
from service.witness_client import http_post
from transparency.tlog_witness import submit_all

log = logging.getLogger("tsunagu.gateway.scheduler")

#: How often SQLite's write-ahead log is copied back into the database.
CHECKPOINT_SECONDS = 30
#: How often the run worker looks for requests nobody told it about (CLI imports, another process).
POLL_SECONDS = 5.0
#: Wait after a failed run before trying again (the requests stay; the failure is in the log).
FAILED_RETRY_SECONDS = 60.0


class Jobs:
    """The scheduler of one gateway process."""

    def __init__(self, gw: Gateway) -> None:
        """Prepare the jobs the settings ask for (nothing runs before :meth:`start`)."""
        self.gw = gw
        self.scheduler = BackgroundScheduler(timezone=timezone.utc, job_defaults={"coalesce": True, "max_instances": 1})
        settings = gw.settings
        if settings.link_interval_minutes:
            self.scheduler.add_job(self._interval, "interval", minutes=settings.link_interval_minutes, id="link-interval")
        if settings.retention_interval_minutes:
            self.scheduler.add_job(self._purge, "interval", minutes=settings.retention_interval_minutes, id="retention")
        self.scheduler.add_job(checkpoint, "interval", seconds=CHECKPOINT_SECONDS, args=[gw.engine], id="wal-checkpoint")
        if settings.witness_interval_seconds:
            self.scheduler.add_job(self._witness, "interval", seconds=settings.witness_interval_seconds, id="witness")
        if settings.drop_folder is not None:
            settings.drop_folder.mkdir(parents=True, exist_ok=True)
            self.scheduler.add_job(self._drop, "interval", seconds=settings.drop_poll_seconds, id="drop-folder")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._link_worker, name="tsunagu-link-worker", daemon=True)
        self._run_guard = threading.Lock()
        self._run: multiprocessing.process.BaseProcess | None = None
        #: set while the worker has a run process going (for /health and tests)
        self.running = False
        #: the last time the worker loop went round (for /health: a stuck worker is a failed scheduler)
        self.heartbeat = time.monotonic()

    def start(self) -> None:
        """Start the jobs and listen for accepted submissions."""
        self.gw.listeners.append(self.link_soon)
        self.scheduler.start()
        self._worker.start()

    def shutdown(self) -> None:
        """Stop the jobs; a running linkage run is ended (its requests stay and it runs again at the next start)."""
        if self.link_soon in self.gw.listeners:
            self.gw.listeners.remove(self.link_soon)
        self._stop.set()
        self._wake.set()
        with self._run_guard:
            if self._run is not None:
                log.info("server stopping: ending the linkage run in progress (its requests stay for the next start)")
                end_process_group(self._run)
        self.scheduler.shutdown(wait=True)
        if self._worker.is_alive():
            self._worker.join()

    @property
    def alive(self) -> bool:
        """Whether the scheduler and the run worker are both going."""
        return self.scheduler.running and self._worker.is_alive()

    def link_soon(self, _result: Any = None) -> None:
        """Wake the run worker: a request was just committed (the debounce counts from the newest request)."""
        self._wake.set()

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(max(0.0, seconds))
        self._wake.clear()

    def _link_worker(self) -> None:
        debounce = self.gw.settings.link_debounce_seconds
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            try:
                with self.gw.engine.connect() as conn:
                    count, _oldest, newest, trigger = pending_requests(conn)
            except Exception:  # noqa: BLE001 - the database may be down; the requests wait in it
                log.exception("cannot read the linkage-run requests; trying again in %s s", POLL_SECONDS)
                self._sleep(POLL_SECONDS)
                continue
            if not count:
                self._sleep(POLL_SECONDS)
                continue
            due = (newest + timedelta(seconds=debounce) - utcnow()).total_seconds()
            if due > 0 and not trigger.startswith(MANUAL_TRIGGERS):
                self._sleep(min(due, POLL_SECONDS))
                continue
            self.running = True
            try:
                code = self._run_once(trigger or "submission")
            finally:
                self.running = False
            if self._stop.is_set():
                break
            if code == RUN_IN_PROGRESS:
                self._stop.wait(BUSY_RETRY_SECONDS)
            elif code:
                log.error("linkage run (%s) ended with exit code %s; its requests stay and it is retried in %s s",
                          trigger, code, FAILED_RETRY_SECONDS)
                self._stop.wait(FAILED_RETRY_SECONDS)

    def _run_once(self, trigger: str) -> int:
        """One linkage run in a process bound to this server (:func:`start_bound`); its exit code."""
        with self._run_guard:
            if self._stop.is_set():
                return 0
            process = self._run = start_bound(_run_linkage_child, (str(self.gw.settings.home), trigger), "tsunagu-link")
        try:
            process.join()
        finally:
            with self._run_guard:
                self._run = None
        return process.exitcode or 0

    def _interval(self) -> None:
        try:
            with self.gw.engine.begin() as conn:
                request_run(conn, "schedule")
        except Exception:  # noqa: BLE001
            log.exception("cannot request the scheduled linkage run")
            return
        self._wake.set()

    def _purge(self) -> None:
        try:
            if purge(self.gw):
                self._wake.set()
        except Exception:  # noqa: BLE001
            log.exception("retention purge failed")

    def _witness(self) -> None:
        # Witnessed often, an operator's rewrite of already-cosigned history cannot be cosigned again.
        try:
            submit_all(self.gw.audit, self.gw.witness_folder, http_post())
        except Exception:  # noqa: BLE001
            log.exception("witness submission failed")

    def _drop(self) -> None:
        try:
            process_folder(self.gw, self.gw.settings.drop_folder)
        except Exception:  # noqa: BLE001
            log.exception("drop folder import failed")


def pending(gw: Gateway, jobs: Jobs | None) -> dict[str, Any]:
    """Whether a run is due: the waiting run requests (count, oldest, newest, the newest's trigger) and whether one is going.

    A run is going if the database has one marked running (any process) or ``jobs`` (this process's scheduler) runs one.
    """
    with gw.engine.connect() as conn:
        count, oldest, newest, trigger = pending_requests(conn)
        running = conn.execute(select(func.count()).where(models.link_runs.c.status == "running")).scalar()
    return {"requests": count, "oldest": oldest, "newest": newest, "trigger": trigger,
            "running": bool(running) or bool(jobs and jobs.running)}
