"""Linkage runs: load every current record, link them, and publish stable persons without ever blocking readers.

A run writes its person assignments, review pairs and person events under a
new run id, then flips the single ``current_run`` pointer (and retires
persons) in one short transaction. Readers always join on the current run, so
they see the previous run until the flip and the new one after it. A run that
dies before the flip leaves status ``running``; the next run marks it
``failed`` and removes its rows, so the previous run stays intact.

Run requests (``link_requests``) are written in the transaction of the change
that needs a run (an accepted submission, a retention purge, the interval);
a run notes the requests it saw before loading and removes exactly those when
it publishes. A request made during a run therefore outlives it and causes the
next one, and a gateway that crashed before running still finds it at start.
"""

from __future__ import annotations

import fcntl
import json
import logging
import multiprocessing
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from sqlalchemy import delete, func, insert, literal, select, update
from sqlalchemy.engine import Connection

from gateway import models
from gateway.core import Gateway
from gateway.crashpoints import crash_point
from gateway.db import checkpoint, utcnow
from gateway.errors import GatewayError, RunInProgress
from gateway.persons import assign
from gateway.review import current_decisions, link_bound
from gateway.runprocess import end_process_group, start_bound
from linkage.compare import COMPARISONS
from linkage.encode import Encodings
from linkage.incremental import LinkState, link_full, link_incremental
from linkage.match import link
from linkage.schema import current_version
from linkage.score import LEVEL_LABELS, levels
from service.pools import ForkPool

log = logging.getLogger("tsunagu.gateway.link")

_BATCH = 20_000
#: Tokens per IN (...) list (SQLite allows 32,766 parameters; PostgreSQL more).
_IN_BATCH = 500
#: Runs whose assignments are kept: the current one and the one before (for comparison).
_KEEP_RUNS = 2
#: Exit code of a run process that found another run going (EX_TEMPFAIL).
RUN_IN_PROGRESS = 75


@dataclass
class LoadedSources:
    """Every current record, grouped by source, ready for ``linkage.match.link``."""

    names: list[str]
    tokens: list[list[str]]
    encodings: list[Encodings]
    skipped: int

    @property
    def records(self) -> int:
        """Records loaded."""
        return sum(len(t) for t in self.tokens)


def request_run(conn: Connection, trigger: str) -> None:
    """Ask for a linkage run, inside the caller's transaction (so the request commits with the change)."""
    conn.execute(insert(models.link_requests).values(requested_at=utcnow(), trigger=trigger[:16]))


#: Triggers of run requests people made ("run now"): the scheduler runs them without waiting out the debounce.
MANUAL_TRIGGERS = ("api:", "web:")


def request_manual_run(gw: Gateway, jobs: Any, trigger: str, runs: "ServerRuns | None" = None) -> None:
    """Store a "run now" request and make it happen: the scheduler (``jobs``, if this process has one) runs it; without
    one, ``runs`` (the server's :class:`ServerRuns`) starts a run process bound to the server. Either way the request is
    in ``link_requests`` first, so it is not lost to a run already going (it causes the next one) or to a stop of the
    gateway (the next start runs it)."""
    with gw.engine.begin() as conn:
        request_run(conn, trigger)
    if jobs is not None and jobs.alive:
        jobs.link_soon()
    else:
        (runs or ServerRuns(gw)).start(trigger)


#: Wait after a run that found another run going (the CLI's, the API's) before trying again.
BUSY_RETRY_SECONDS = 2.0


class ServerRuns:
    """The "run now" runs of a server that has no scheduler, bound to it as the scheduler's are (``gateway.runprocess``).

    Each run is a process of its own (its process group, ``PR_SET_PDEATHSIG``), started and waited for by a thread
    that lives as long as it does; :meth:`shutdown` (the server stopping) ends every one. Ending a run loses nothing:
    its requests stay in ``link_requests`` until it commits and ``link.lock`` is an ``flock``, so the next start runs
    it. A run that finds another going (exit ``RUN_IN_PROGRESS``) is tried again while requests wait.
    """

    def __init__(self, gw: Gateway) -> None:
        """Runs of the gateway ``gw`` (none started yet)."""
        self.gw = gw
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._processes: set[Any] = set()

    def start(self, trigger: str) -> None:
        """Start a run for ``trigger`` in the background (nothing happens once the server is stopping)."""
        if not self._stop.is_set():
            threading.Thread(target=self._run, args=(trigger[:16],), name="tsunagu-link-run", daemon=True).start()

    def _run(self, trigger: str) -> None:
        while True:
            with self._guard:
                if self._stop.is_set():
                    return
                process = start_bound(_child, (str(self.gw.settings.home), trigger), "tsunagu-link")
                self._processes.add(process)
            try:
                process.join()
            finally:
                with self._guard:
                    self._processes.discard(process)
            if process.exitcode != RUN_IN_PROGRESS or self._stop.wait(BUSY_RETRY_SECONDS):
                return
            try:
                with self.gw.engine.connect() as conn:
                    if not pending_requests(conn)[0]:
                        return  # the run that was going covered this request
            except Exception:  # noqa: BLE001 - the database may be down; the request waits in it for the next start
                log.exception("cannot read the linkage-run requests; the requested run waits for the next start")
                return

    def shutdown(self) -> None:
        """End every run in progress and start no more (their requests stay for the next start)."""
        self._stop.set()
        with self._guard:
            for process in self._processes:
                log.info("server stopping: ending the linkage run in progress (its requests stay for the next start)")
                end_process_group(process)


def pending_requests(conn: Connection) -> tuple[int, Any, Any, str]:
    """How many run requests wait, the oldest's and newest's times, and the newest's trigger."""
    q = models.link_requests
    count, oldest, newest = conn.execute(select(func.count(), func.min(q.c.requested_at), func.max(q.c.requested_at))).one()
    trigger = conn.execute(select(q.c.trigger).order_by(q.c.id.desc()).limit(1)).scalar() if count else ""
    return int(count), oldest, newest, trigger or ""


def current_run_id(conn: Connection) -> int | None:
    """The run readers should use (None before the first finished run)."""
    return conn.execute(select(models.current_run.c.run_id).where(models.current_run.c.id == 1)).scalar()


def load_sources(conn: Connection, key_id: str) -> LoadedSources:
    """Read the current records of every source whose snapshot is under ``key_id`` into numpy arrays.

    A source encoded under another schema than this gateway's (``TSUNAGU_SCHEMA``, docs/privacy.md)
    cannot be compared with the rest: it is skipped and counted, as one under another key is.
    """
    schema_version = current_version()
    r, s = models.records, models.submissions
    rows = conn.execute(
        select(r.c.source, r.c.token, r.c.clk, r.c.present, r.c.blocks, s.c.schema_version, s.c.linkage_key_id)
        .join(s, s.c.id == r.c.submission_id)
        .order_by(r.c.source, r.c.token)
    ).all()
    names: list[str] = []
    tokens: list[list[str]] = []
    encodings: list[Encodings] = []
    skipped = 0
    start = 0
    while start < len(rows):
        source = rows[start].source
        end = start
        while end < len(rows) and rows[end].source == source:
            end += 1
        part = rows[start:end]
        start = end
        if part[0].linkage_key_id != key_id or part[0].schema_version != schema_version:
            skipped += len(part)
            continue
        n = len(part)
        bits = np.frombuffer(b"".join(p.clk for p in part), dtype=np.uint8).reshape(n, -1)
        present = np.fromiter((p.present for p in part), dtype=np.uint16, count=n)
        blocks = np.frombuffer(b"".join(p.blocks for p in part), dtype="<u8").reshape(n, -1).astype(np.uint64)
        names.append(source)
        tokens.append([p.token for p in part])
        encodings.append(Encodings(part[0].schema_version, key_id, bits, present, blocks))
    return LoadedSources(names, tokens, encodings, skipped)


@contextmanager
def _run_lock(gw: Gateway) -> Iterator[None]:
    # One run at a time per deployment (server scheduler and CLI alike).
    with open(gw.settings.home / "link.lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInProgress("名寄せはすでに実行中です。終わってからもう一度実行してください。") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_linkage(gw: Gateway, trigger: str = "manual", progress: Callable[[str], None] | None = None,
                full: bool | None = None) -> dict[str, Any]:
    """Link the current records and publish the result as the current run; returns the run's statistics.

    Incremental (the default ``linkage_mode``): only new and changed records are
    linked against the last run, and only the components they touch are
    solved again (``linkage.incremental``), with the same persons a full relink
    with the same model would give. ``full=True`` (or ``linkage_mode = "full"``)
    relinks everything and refits the model.
    """
    say = progress or (lambda _stage: None)
    with _run_lock(gw):
        _clean_interrupted(gw)
        with gw.engine.begin() as conn:
            run_id = conn.execute(insert(models.link_runs).values(trigger=trigger, status="running", started_at=utcnow())).inserted_primary_key[0]
        crash_point("link.after_start")
        log.info("linkage run %s started (%s)", run_id, trigger)
        try:
            stats = _run(gw, run_id, say, full if full is not None else gw.settings.linkage_mode == "full")
        except BaseException as exc:
            with gw.engine.begin() as conn:
                _discard(conn, [run_id], type(exc).__name__)
            log.error("linkage run %s failed (%s); the previous run stays current", run_id, type(exc).__name__)
            raise
    log.info("linkage run %s done: %s", run_id, stats)
    return stats


def _state_path(gw: Gateway) -> Path:
    return gw.settings.home / "link-state.npz"


def _load_state(gw: Gateway, previous_run: int | None) -> LinkState | None:
    """The state the current run left, if it is that run's (else None: a full run is needed)."""
    path = _state_path(gw)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if previous_run is None or not data.startswith(f"run{previous_run}\n".encode()):
        return None
    try:
        return LinkState.from_bytes(data.split(b"\n", 1)[1])
    except (ValueError, KeyError, OSError):
        log.warning("the linkage state file is unreadable; this run relinks everything")
        return None


def _save_state(gw: Gateway, run_id: int, state: LinkState) -> None:
    # Written beside the database and renamed into place: a reader sees the old state or the new one.
    path = _state_path(gw)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(f"run{run_id}\n".encode() + state.to_bytes())
    tmp.chmod(0o600)
    tmp.replace(path)


def _link(gw: Gateway, loaded: LoadedSources, decisions: dict, previous_run: int | None,
          full: bool) -> tuple[Any, LinkState | None, dict[str, Any]]:
    """The run's LinkResult, the state to keep, and how it was made."""
    if decisions:
        # Reviewers' decisions bind the run (gateway.review): a full run applies them.
        return link_bound(loaded.names, loaded.tokens, loaded.encodings, decisions), None, {"mode": "full"}
    if gw.settings.linkage_dask_address:
        result = link(loaded.encodings, dask_address=gw.settings.linkage_dask_address)
        return result, None, {"mode": "full", "engine": "dask"}
    state = None if full else _load_state(gw, previous_run)
    if state is not None and state.names == loaded.names:
        result, new_state, figures = link_incremental(loaded.names, loaded.tokens, loaded.encodings, state)
        return result, new_state, {"mode": "incremental", **figures}
    result, new_state = link_full(loaded.names, loaded.tokens, loaded.encodings, engine=ForkPool())
    return result, new_state, {"mode": "full"}


def _run(gw: Gateway, run_id: int, say: Callable[[str], None], full: bool = False) -> dict[str, Any]:
    t0 = time.perf_counter()
    say("load")
    with gw.engine.connect() as conn:
        # Read before loading: the data of every request seen here is committed, so this run covers it.
        covered = conn.execute(select(models.link_requests.c.id)).scalars().all()
        loaded = load_sources(conn, gw.settings.linkage_key_id)
        previous_run = current_run_id(conn)
        decisions = current_decisions(conn)
    t1 = time.perf_counter()
    say("link")
    state, how = None, {"mode": "full"}
    if loaded.records:
        result, state, how = _link(gw, loaded, decisions, previous_run, full)
        clusters = result.clusters
        review = result.review_queue()
        matched = int(np.count_nonzero(result.pairs.weight >= result.match_threshold))
        candidates = result.candidate_count
    else:
        result, clusters, review, matched, candidates = None, [], np.zeros(0, dtype=np.int64), 0, 0
    # An incremental run re-assigns only the clusters it re-solved: every other cluster is the previous
    # run's, and so is its person (persons.assign gives an identical cluster its own person, uncontested).
    kept = result.unchanged if result is not None and result.unchanged is not None and previous_run else None
    persons = len(clusters)
    if kept is not None:
        clusters = [c for c in clusters if not kept[c[0][0]][c[0][1]]]
    keyed = [[(loaded.names[s], loaded.tokens[s][i]) for s, i in c] for c in clusters]
    with gw.engine.connect() as conn:
        if kept is None:
            previous = _previous_assignments(conn, previous_run, None)
        else:
            touched = {(src, tok) for members in keyed for src, tok in members}
            touched.update((loaded.names[s], tok) for s, toks in enumerate(result.departed) for tok in toks)
            previous = _previous_assignments(conn, previous_run, touched)
    assignment = assign(keyed, previous)
    t2 = time.perf_counter()
    say("store")
    with gw.engine.begin() as conn:
        _insert_batched(conn, models.persons, [{"person_id": p, "created_run_id": run_id} for p in assignment.new])
        if kept is not None:
            _copy_assignments(conn, previous_run, run_id, touched)
        _insert_batched(conn, models.assignments, [
            {"run_id": run_id, "source": src, "token": tok, "person_id": pid}
            for members, pid in zip(keyed, assignment.person_ids) for src, tok in members])
        if kept is not None:
            # The persons of untouched clusters keep their summary; every person a re-solved record had or has
            # gets a fresh one below.
            _copy_person_summaries(conn, previous_run, run_id, set(previous.values()) | set(assignment.person_ids))
        _insert_batched(conn, models.run_persons, person_summaries(run_id, keyed, assignment.person_ids))
        _insert_batched(conn, models.person_events,
                        [{"run_id": run_id, "kind": "merge", "person_id": p, "related": json.dumps(o)} for p, o in assignment.merges]
                        + [{"run_id": run_id, "kind": "split", "person_id": p, "related": json.dumps(o)} for p, o in assignment.splits])
        if result is not None:
            _insert_batched(conn, models.review_pairs, _review_rows(run_id, loaded, result, review))
    crash_point("link.after_store")
    say("publish")
    t3 = time.perf_counter()
    stats = {"run_id": run_id, "records": loaded.records, "sources": len(loaded.names), "skipped_records": loaded.skipped,
             "candidates": int(candidates), "matched_pairs": matched, "review_pairs": int(len(review)),
             "persons": persons, "new_persons": len(assignment.new), "retired_persons": len(assignment.retired),
             "merges": len(assignment.merges), "splits": len(assignment.splits),
             "load_seconds": round(t1 - t0, 3), "link_seconds": round(t2 - t1, 3), "store_seconds": round(t3 - t2, 3), **how}
    with gw.engine.begin() as conn:
        for i in range(0, len(covered), _BATCH):
            conn.execute(delete(models.link_requests).where(models.link_requests.c.id.in_(covered[i:i + _BATCH])))
        for i in range(0, len(assignment.retired), _BATCH):
            conn.execute(update(models.persons).where(models.persons.c.person_id.in_(assignment.retired[i:i + _BATCH]))
                         .values(retired_run_id=run_id))
        if conn.execute(update(models.current_run).where(models.current_run.c.id == 1).values(run_id=run_id)).rowcount == 0:
            conn.execute(insert(models.current_run).values(id=1, run_id=run_id))
        conn.execute(update(models.link_runs).where(models.link_runs.c.id == run_id).values(
            status="done", finished_at=utcnow(), **{k: stats[k] for k in (
                "records", "sources", "candidates", "matched_pairs", "review_pairs", "persons", "new_persons", "merges",
                "splits", "load_seconds", "link_seconds", "store_seconds")}))
        crash_point("link.after_publish")
        # The entry commits with the flip: a published run is always in the log, an unpublished one never.
        gw.record("scheduler", "system", "link.run",
                  f"mode={how['mode']} persons={stats['persons']} merges={stats['merges']} splits={stats['splits']}",
                  target=f"run#{run_id}", connection=conn)
        crash_point("link.after_audit")
    crash_point("link.after_commit")
    if state is not None:
        _save_state(gw, run_id, state)
    elif _state_path(gw).exists():
        _state_path(gw).unlink()
    _prune(gw, run_id)
    checkpoint(gw.engine)
    return stats


def _previous_assignments(conn: Connection, previous_run: int | None, keys: set[tuple[str, str]] | None) -> dict:
    """(source, token) -> person of the previous run: all of them, or only those of ``keys``."""
    if previous_run is None:
        return {}
    a = models.assignments
    query = select(a.c.source, a.c.token, a.c.person_id).where(a.c.run_id == previous_run)
    if keys is None:
        return {(row.source, row.token): row.person_id for row in conn.execute(query)}
    out = {}
    by_source: dict[str, list[str]] = {}
    for src, tok in keys:
        by_source.setdefault(src, []).append(tok)
    for src, toks in by_source.items():
        for i in range(0, len(toks), _IN_BATCH):
            for row in conn.execute(query.where(a.c.source == src, a.c.token.in_(toks[i:i + _IN_BATCH]))):
                out[(row.source, row.token)] = row.person_id
    return out


def _copy_assignments(conn: Connection, previous_run: int, run_id: int, replaced: set[tuple[str, str]]) -> None:
    """Carry the previous run's assignments into ``run_id`` inside the database, less the ``replaced`` records."""
    a = models.assignments
    conn.execute(insert(a).from_select(["run_id", "source", "token", "person_id"],
                                       select(literal(run_id), a.c.source, a.c.token, a.c.person_id).where(a.c.run_id == previous_run)))
    by_source: dict[str, list[str]] = {}
    for src, tok in replaced:
        by_source.setdefault(src, []).append(tok)
    for src, toks in by_source.items():
        for i in range(0, len(toks), _IN_BATCH):
            conn.execute(delete(a).where(a.c.run_id == run_id, a.c.source == src, a.c.token.in_(toks[i:i + _IN_BATCH])))


def _copy_person_summaries(conn: Connection, previous_run: int, run_id: int, affected: set[str]) -> None:
    """Carry the previous run's ``run_persons`` rows into ``run_id`` inside the database, less the ``affected`` persons."""
    rp = models.run_persons
    conn.execute(insert(rp).from_select(["run_id", "person_id", "records", "sources", "source_list"],
                                        select(literal(run_id), rp.c.person_id, rp.c.records, rp.c.sources, rp.c.source_list)
                                        .where(rp.c.run_id == previous_run)))
    ids = sorted(affected)
    for i in range(0, len(ids), _IN_BATCH):
        conn.execute(delete(rp).where(rp.c.run_id == run_id, rp.c.person_id.in_(ids[i:i + _IN_BATCH])))


def person_summaries(run_id: int, clusters: Sequence[Sequence[tuple[str, str]]], person_ids: Sequence[str]) -> list[dict[str, Any]]:
    """``run_persons`` rows: each person's record count, source count and sources (",a,b,", for the list's filter)."""
    rows = []
    for members, person_id in zip(clusters, person_ids):
        sources = sorted({source for source, _ in members})
        rows.append({"run_id": run_id, "person_id": person_id, "records": len(members), "sources": len(sources),
                     "source_list": "," + ",".join(sources) + ","})
    return rows


def _review_rows(run_id: int, loaded: LoadedSources, result: Any, review: np.ndarray) -> list[dict[str, Any]]:
    p = result.pairs
    lv = levels(p.similarities)[review]
    # The weight each field adds (log2 m/u), so the review screen can show how the pair's weight builds up.
    added = result.model.contributions(p.similarities)[review]
    rows = []
    for k, idx in enumerate(review.tolist()):
        sa, ia, sb, ib = int(p.source_a[idx]), int(p.index_a[idx]), int(p.source_b[idx]), int(p.index_b[idx])
        fields = {name: {"level": int(lv[k, c]), "label": LEVEL_LABELS[name][lv[k, c]] if lv[k, c] >= 0 else "欠損",
                         "weight": round(float(added[k, c]), 3)}
                  for c, name in enumerate(COMPARISONS)}
        rows.append({"run_id": run_id, "source_a": loaded.names[sa], "token_a": loaded.tokens[sa][ia],
                     "source_b": loaded.names[sb], "token_b": loaded.tokens[sb][ib], "weight": float(p.weight[idx]),
                     "fields": json.dumps(fields, ensure_ascii=False)})
    return rows


def _insert_batched(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), _BATCH):
        conn.execute(insert(table), rows[i:i + _BATCH])


def _clean_interrupted(gw: Gateway) -> None:
    """Mark runs that died before publishing as failed and remove what they wrote."""
    with gw.engine.begin() as conn:
        dead = conn.execute(select(models.link_runs.c.id).where(models.link_runs.c.status == "running")).scalars().all()
        if dead:
            _discard(conn, dead, "interrupted")
            log.warning("linkage runs %s were interrupted; their partial results were removed", dead)


def _discard(conn: Connection, run_ids: list[int], error: str) -> None:
    for table in (models.assignments, models.run_persons, models.review_pairs, models.person_events):
        conn.execute(delete(table).where(table.c.run_id.in_(run_ids)))
    conn.execute(delete(models.persons).where(models.persons.c.created_run_id.in_(run_ids)))
    conn.execute(update(models.link_runs).where(models.link_runs.c.id.in_(run_ids))
                 .values(status="failed", finished_at=utcnow(), error=error))


def _prune(gw: Gateway, current: int) -> None:
    """Drop assignments and review pairs of runs older than the last few finished ones (events stay)."""
    with gw.engine.begin() as conn:
        keep = conn.execute(select(models.link_runs.c.id).where(models.link_runs.c.status == "done")
                            .order_by(models.link_runs.c.id.desc()).limit(_KEEP_RUNS)).scalars().all()
        oldest = min([*keep, current])
        for table in (models.assignments, models.run_persons, models.review_pairs):
            conn.execute(delete(table).where(table.c.run_id < oldest))


def runs(gw: Gateway, limit: int = 50) -> list[dict[str, Any]]:
    """The latest runs with their statistics, newest first."""
    with gw.engine.connect() as conn:
        rows = conn.execute(select(models.link_runs).order_by(models.link_runs.c.id.desc()).limit(limit)).all()
        current = current_run_id(conn)
    return [{**dict(r._mapping), "current": r.id == current} for r in rows]



def run_in_subprocess(home: Path, trigger: str) -> int:
    """Run :func:`run_linkage` in a fresh process and wait for it; returns its exit code.

    The server is multi-threaded (uvicorn, the scheduler); the matcher forks
    worker processes, which is only safe from a single-threaded process, and a
    CPU-bound run in a process of its own leaves the API's interpreter free.
    For a program that is not a server (the benchmarks): a server starts its runs bound to it instead
    (:class:`ServerRuns`, ``gateway.scheduler``).
    """
    process = multiprocessing.get_context("spawn").Process(target=_child, args=(str(home), trigger), name="tsunagu-link")
    process.start()
    process.join()
    return process.exitcode or 0


def _child(home: str, trigger: str) -> None:
    gw = Gateway.open(Path(home))
    try:
        run_linkage(gw, trigger=trigger)
    except GatewayError as exc:
        log.warning("linkage run not started: %s", exc.detail)
        raise SystemExit(RUN_IN_PROGRESS if exc.code == "run_in_progress" else 1) from None
    finally:
        gw.close()
