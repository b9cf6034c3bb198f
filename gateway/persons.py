"""Stable pseudonymous persons: carry person ids from one linkage run's clusters to the next.

A new cluster takes the id of the previous person it shares the most records
with (ties: the smaller id), each previous id going to at most one cluster;
clusters left over get fresh random ids. So a person keeps its id when records
are added, changed or removed. When a cluster gathers records of several
previous persons, that is a *merge* (the largest share keeps its id, the others
retire); when a previous person's records fall into several clusters, that is
a *split* (the largest share keeps the id, the rest get new ones).
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Hashable, Sequence

Key = Hashable


def new_person_id() -> str:
    """A random, meaningless person id (64 bits)."""
    return "P" + secrets.token_hex(8)


@dataclass
class Assignment:
    """Person id per cluster, and what changed against the previous run."""

    person_ids: list[str]
    new: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    #: (kept person id, person ids merged into it)
    merges: list[tuple[str, list[str]]] = field(default_factory=list)
    #: (previous person id, person ids split off it)
    splits: list[tuple[str, list[str]]] = field(default_factory=list)


def assign(clusters: Sequence[Sequence[Key]], previous: dict[Key, str], fresh: Callable[[], str] = new_person_id) -> Assignment:
    """Person ids for ``clusters`` given the previous run's record → person map."""
    shares: list[Counter[str]] = [Counter(previous[k] for k in c if k in previous) for c in clusters]
    candidates = sorted((-n, pid, ci) for ci, counts in enumerate(shares) for pid, n in counts.items())
    chosen: dict[int, str] = {}
    taken: set[str] = set()
    for _n, pid, ci in candidates:
        if ci not in chosen and pid not in taken:
            chosen[ci] = pid
            taken.add(pid)
    out = Assignment(person_ids=[])
    for ci in range(len(clusters)):
        pid = chosen.get(ci)
        if pid is None:
            pid = fresh()
            out.new.append(pid)
        out.person_ids.append(pid)
    out.retired = sorted(set(previous.values()) - taken)
    for ci, counts in enumerate(shares):
        if len(counts) > 1:
            out.merges.append((out.person_ids[ci], sorted(p for p in counts if p != out.person_ids[ci])))
    spread: dict[str, list[str]] = {}
    for ci, counts in enumerate(shares):
        for pid in counts:
            if out.person_ids[ci] != pid:
                spread.setdefault(pid, []).append(out.person_ids[ci])
    for pid, others in sorted(spread.items()):
        if pid in taken:  # its main share lives on: the other clusters split off it
            out.splits.append((pid, sorted(others)))
    return out
