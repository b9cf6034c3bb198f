"""Refusals of unauthenticated requests: counted in memory, a few kept in detail, one audit entry per period.

Anyone on the network can send garbage; if each refusal were signed into the
append-only audit log, anyone could grow that log without bound. So a service
asks :meth:`RefusalCounter.admit` before it writes a detailed row for a
refusal (at most ``detailed_per_period`` per kind and period), counts every
refusal, and :meth:`RefusalCounter.flush` writes the counts of the period as
one audit entry. The counted keys are the service's own codes (never text the
client sent), and their number is bounded, so memory is bounded too.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

#: The most distinct kinds counted in one period; the rest are counted as ``other``.
MAX_KINDS = 100


class RefusalCounter:
    """Counts refusals per kind (``channel:code``) and hands a summary to ``summarise`` once per period."""

    def __init__(self, summarise: Callable[[str, int], None], period_seconds: float = 600.0,
                 detailed_per_period: int = 20, clock: Callable[[], float] = time.monotonic) -> None:
        """``summarise(outcome, total)`` writes the audit entry; it is called outside the counter's lock."""
        self._summarise = summarise
        self.period = period_seconds
        self.detailed_per_period = detailed_per_period
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._started = clock()

    def admit(self, kind: str) -> bool:
        """Count one refusal of ``kind``; True if it may still be logged in detail in this period."""
        due = None
        with self._lock:
            key = kind if kind in self._counts or len(self._counts) < MAX_KINDS else "other"
            self._counts[key] = self._counts.get(key, 0) + 1
            admitted = self._counts[key] <= self.detailed_per_period
            if self._clock() - self._started >= self.period:
                due = self._take()
        if due:
            self._write(*due)
        return admitted

    def flush(self) -> None:
        """Write the counts so far as one audit entry now (at shutdown, or when an auditor asks)."""
        with self._lock:
            due = self._take()
        if due:
            self._write(*due)

    def pending(self) -> dict[str, int]:
        """The counts of the current period (for a dashboard)."""
        with self._lock:
            return dict(self._counts)

    def _take(self) -> tuple[dict[str, int], float] | None:
        counts, seconds = self._counts, self._clock() - self._started
        self._counts, self._started = {}, self._clock()
        return (counts, seconds) if counts else None

    def _write(self, counts: dict[str, int], seconds: float) -> None:
        total = sum(counts.values())
        detail = ", ".join(f"{k}={v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        self._summarise(f"{total} refusals in {int(seconds)} s: {detail}"[:500], total)
