"""Background jobs of a running gateway (APScheduler): debounced and periodic linkage runs, retention, the drop folder."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from gateway.core import Gateway
from gateway.db import checkpoint
from gateway.dropfolder import process_folder
from gateway.link import RUN_IN_PROGRESS, run_in_subprocess
from gateway.retention import purge
from keys.witness import submit_all

log = logging.getLogger("tsunagu.gateway.scheduler")

_LINK_SOON = "link-after-submission"
#: How often SQLite's write-ahead log is copied back into the database.
CHECKPOINT_SECONDS = 30


class Jobs:
    """The scheduler of one gateway process."""

    def __init__(self, gw: Gateway) -> None:
        """Prepare the jobs the settings ask for (nothing runs before :meth:`start`)."""
        self.gw = gw
        self.scheduler = BackgroundScheduler(timezone=timezone.utc, job_defaults={"coalesce": True, "max_instances": 1})
        settings = gw.settings
        if settings.link_interval_minutes:
            self.scheduler.add_job(self._link, "interval", minutes=settings.link_interval_minutes, args=["schedule"], id="link-interval")
        if settings.retention_interval_minutes:
            self.scheduler.add_job(self._purge, "interval", minutes=settings.retention_interval_minutes, id="retention")
        self.scheduler.add_job(checkpoint, "interval", seconds=CHECKPOINT_SECONDS, args=[gw.engine], id="wal-checkpoint")
        if settings.witness_interval_seconds:
            self.scheduler.add_job(self._witness, "interval", seconds=settings.witness_interval_seconds, id="witness")
        if settings.drop_folder is not None:
            settings.drop_folder.mkdir(parents=True, exist_ok=True)
            self.scheduler.add_job(self._drop, "interval", seconds=settings.drop_poll_seconds, id="drop-folder")

    def start(self) -> None:
        """Start the jobs and listen for accepted submissions."""
        self.gw.listeners.append(self.link_soon)
        self.scheduler.start()

    def shutdown(self) -> None:
        """Stop the jobs (a running linkage run finishes first)."""
        if self.link_soon in self.gw.listeners:
            self.gw.listeners.remove(self.link_soon)
        self.scheduler.shutdown(wait=True)

    def link_soon(self, _result: Any = None, trigger: str = "submission") -> None:
        """Schedule a linkage run ``link_debounce_seconds`` from now; later calls push it back."""
        when = datetime.now(timezone.utc) + timedelta(seconds=self.gw.settings.link_debounce_seconds)
        self.scheduler.add_job(self._link, "date", run_date=when, args=[trigger], id=_LINK_SOON, replace_existing=True)

    def _link(self, trigger: str) -> None:
        code = run_in_subprocess(self.gw.settings.home, trigger)
        if code == RUN_IN_PROGRESS:
            self.link_soon(trigger=trigger)
        elif code:
            log.error("linkage run (%s) ended with exit code %s", trigger, code)

    def _purge(self) -> None:
        try:
            if purge(self.gw):
                self.link_soon(trigger="retention")
        except Exception:  # noqa: BLE001
            log.exception("retention purge failed")

    def _witness(self) -> None:
        # Witnessed often, an operator's rewrite of already-cosigned history cannot be cosigned again.
        try:
            submit_all(self.gw.audit, self.gw.witness_folder)
        except Exception:  # noqa: BLE001
            log.exception("witness submission failed")

    def _drop(self) -> None:
        try:
            process_folder(self.gw, self.gw.settings.drop_folder)
        except Exception:  # noqa: BLE001
            log.exception("drop folder import failed")
