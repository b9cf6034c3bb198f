"""Processes bound to the server that starts them: they lead a process group of their own and die with the server.

Linkage runs are CPU-bound and fork the matcher's workers, so a server starts
each one in a fresh (spawned) process. A run must live no longer than the
server that started it: a graceful stop ends the run's whole process group
(:func:`end_process_group`), and on Linux a server that dies (SIGKILL, a
crash) takes the run with it (``PR_SET_PDEATHSIG``, :func:`die_with_parent`).
The scheduler's runs (``gateway.scheduler``) and the "run now" runs of a
server without a scheduler (``gateway.link.ServerRuns``) are both started here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
from typing import Any

#: prctl(2) option: the signal the kernel sends this process when the thread that started it ends
#: (so a bound process is started, and waited for, by a thread that lives as long as it does).
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Make this process end when ``parent`` (the server) does, and lead a process group of its own.

    The process group lets the server end the run and the worker processes the matcher forks in one
    signal; ``PR_SET_PDEATHSIG`` (Linux) makes the kernel send SIGTERM when the server dies. If the server
    died before this call, there is no one left to send it: the process ends itself.
    """
    if hasattr(os, "setpgid"):
        os.setpgid(0, 0)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:
        os._exit(1)


def _bound_child(parent: int, target: Any, args: tuple[Any, ...]) -> None:
    die_with_parent(parent)
    target(*args)


def start_bound(target: Any, args: tuple[Any, ...], name: str) -> multiprocessing.process.BaseProcess:
    """Start ``target(*args)`` in a fresh (spawned) process bound to this one by :func:`die_with_parent`.

    Spawned, not forked: the server is multi-threaded, and the matcher forks workers, which is only safe
    from a single-threaded process.
    """
    process = multiprocessing.get_context("spawn").Process(target=_bound_child, args=(os.getpid(), target, args), name=name)
    process.start()
    return process


def end_process_group(process: multiprocessing.process.BaseProcess) -> None:
    """Send SIGTERM to ``process`` and the process group it leads (its own workers)."""
    if process.pid is None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (AttributeError, ProcessLookupError, PermissionError):
        # Not a group leader yet (it has not reached die_with_parent), or no process groups (Windows).
        process.terminate()
