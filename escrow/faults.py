"""Crash points for the kill -9 consistency tests: the process kills itself (SIGKILL) at a named point.

Used only by ``tests/integration/escrow/test_insider.py``: with ``TSUNAGU_ESCROW_CRASH_AT``
set to a point's name in the server's environment, the escrow dies there
exactly as under ``kill -9`` (no cleanup, no rollback handler runs), so the
test can check what a restarted escrow finds: the change and its audit entry
both committed, or neither. Unset (always, in a deployment), a crash point is
one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "TSUNAGU_ESCROW_CRASH_AT"

#: Every crash point, in the order the request path reaches them.
POINTS = (
    "file.after_insert", "file.after_log",
    "decide.after_insert", "decide.after_log",
    "release.before_claim", "release.after_claim", "release.after_log", "release.after_open", "release.after_commit",
)


def crash_point(name: str) -> None:
    """Die here, as under kill -9, if the environment names this point."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
