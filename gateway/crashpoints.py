"""Test-only crash points for the kill -9 suite: a process whose ``TSUNAGU_TEST_CRASH_AT`` names a point SIGKILLs itself there.

The points sit between the steps of a change (ingest, publishing a linkage
run, a review decision) so a test can prove that, whatever step a killed
process reached, the data and the audit log agree after a restart. Unset
(always, outside that suite) a point costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

_VARIABLE = "TSUNAGU_TEST_CRASH_AT"


def crash_point(name: str) -> None:
    """Die here, as ``kill -9`` would, if the environment names this point."""
    if os.environ.get(_VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
