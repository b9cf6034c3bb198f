"""Test-only crash points for the kill -9 suite: a process whose ``TSUNAGU_TEST_CRASH_AT`` names a point SIGKILLs itself there.

The points sit between the steps of a change (ingest, publishing a linkage
run, a review decision) so a test can prove that, whatever step a killed
process reached, the data and the audit log agree after a restart. A value
``hold:<point>`` makes the process stop at the point instead, until something
ends it (a test that a run ends with its server). Unset (always, outside
those tests) a point costs one environment lookup.
"""

from __future__ import annotations

import os
import signal
import time

_VARIABLE = "TSUNAGU_TEST_CRASH_AT"
_HOLD = "hold:"


def crash_point(name: str) -> None:
    """Die here, as ``kill -9`` would, if the environment names this point; stay here if it says ``hold:`` and the point."""
    chosen = os.environ.get(_VARIABLE)
    if chosen == name:
        os.kill(os.getpid(), signal.SIGKILL)
    elif chosen == _HOLD + name:
        while True:
            time.sleep(3600)
