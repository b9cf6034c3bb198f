"""Linkage runs against the database: stable persons, and a run that dies leaves the previous one intact."""

from __future__ import annotations

import pytest
from synthetic import Town
from sqlalchemy import insert, select

from tests.support.gateway import submit_town
from gateway import casework, models
from gateway.db import utcnow
from gateway.ingest import ingest
from gateway.link import current_run_id, run_linkage
from synthetic.agents import SyntheticAgent


class Boom(RuntimeError):
    pass


def _assignments(gw, run_id):
    a = models.assignments
    with gw.engine.connect() as conn:
        return dict(((r.source, r.token), r.person_id) for r in conn.execute(select(a).where(a.c.run_id == run_id)))


def test_a_run_that_dies_leaves_the_previous_run_current(gw, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    submit_town(gw, town, agents)
    first = run_linkage(gw)
    before = _assignments(gw, first["run_id"])
    assert len(before) == first["records"]

    ingest(gw, agents["school"].submit("school", town.sources["school"][:-5]), "import")

    def die(stage: str) -> None:
        if stage == "publish":  # every row of the new run is written, the pointer not yet flipped
            raise Boom("killed")

    with pytest.raises(Boom):
        run_linkage(gw, progress=die)
    with gw.engine.connect() as conn:
        assert current_run_id(conn) == first["run_id"]
        failed = conn.execute(select(models.link_runs).where(models.link_runs.c.id > first["run_id"])).one()
        assert failed.status == "failed"
        assert conn.execute(select(models.assignments).where(models.assignments.c.run_id == failed.id)).first() is None
    assert _assignments(gw, first["run_id"]) == before
    some = next(iter(before.values()))
    assert casework.person(gw, some, "caseworker")["run_id"] == first["run_id"]

    # A process killed mid-run leaves its run 'running' with rows written; the next run cleans up.
    with gw.engine.begin() as conn:
        dead = conn.execute(insert(models.link_runs).values(trigger="test", status="running", started_at=utcnow())).inserted_primary_key[0]
        conn.execute(insert(models.persons).values(person_id="Pdead", created_run_id=dead))
        conn.execute(insert(models.assignments).values(run_id=dead, source="npo", token="t", person_id="Pdead"))
    second = run_linkage(gw)
    with gw.engine.connect() as conn:
        assert current_run_id(conn) == second["run_id"]
        assert conn.execute(select(models.link_runs.c.status).where(models.link_runs.c.id == dead)).scalar() == "failed"
        assert conn.execute(select(models.persons).where(models.persons.c.person_id == "Pdead")).first() is None
    after = _assignments(gw, second["run_id"])
    kept = [k for k in after if k in before]
    assert len(after) == len(before) - 5
    assert sum(after[k] == before[k] for k in kept) / len(kept) > 0.99


def _partition(gw, run_id):
    groups: dict[str, set] = {}
    for rec, pid in _assignments(gw, run_id).items():
        groups.setdefault(pid, set()).add(rec)
    return sorted(tuple(sorted(g)) for g in groups.values())


def _summaries(gw, run_id):
    rp = models.run_persons
    with gw.engine.connect() as conn:
        rows = conn.execute(select(rp.c.person_id, rp.c.records, rp.c.sources, rp.c.source_list).where(rp.c.run_id == run_id))
        return {r.person_id: (r.records, r.sources, r.source_list) for r in rows}


def _summaries_from_assignments(gw, run_id):
    found: dict[str, list[str]] = {}
    for (source, _), pid in _assignments(gw, run_id).items():
        found.setdefault(pid, []).append(source)
    return {p: (len(s), len(set(s)), "," + ",".join(sorted(set(s))) + ",") for p, s in found.items()}


def test_incremental_run_gives_the_persons_of_a_full_relink(gw, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    from gateway import link as gateway_link
    from linkage.incremental import link_full

    submit_town(gw, town, agents)
    first = run_linkage(gw)
    assert first["mode"] == "full"
    assert (gw.settings.home / "link-state.npz").exists()

    # A day's changes: school drops pupils, the NPO gains a few records.
    ingest(gw, agents["school"].submit("school", town.sources["school"][:-20]), "import")
    ingest(gw, agents["npo"].submit("npo", town.sources["npo"][5:]), "import")
    second = run_linkage(gw)
    assert second["mode"] == "incremental"
    assert second["changed_records"] == 0 and second["removed_records"] == 25
    incremental = _partition(gw, second["run_id"])

    # The same data relinked in full with the state's model and LSH positions: the same persons.
    with gw.engine.connect() as conn:
        loaded = gateway_link.load_sources(conn, gw.settings.linkage_key_id)
    state = gateway_link._load_state(gw, second["run_id"])
    result, _ = link_full(loaded.names, loaded.tokens, loaded.encodings, model=state.model, positions=state.positions)
    full = sorted(tuple(sorted((loaded.names[s], loaded.tokens[s][r]) for s, r in c)) for c in result.clusters)
    assert incremental == full
    # The persons list's per-run summary follows the incremental run too (untouched persons carried over).
    assert _summaries(gw, second["run_id"]) == _summaries_from_assignments(gw, second["run_id"])

    with gw.engine.connect() as conn:
        assert current_run_id(conn) == second["run_id"]
    # A full run on demand refits the model; it still keeps nearly every person.
    third = run_linkage(gw, full=True)
    assert third["mode"] == "full"
    refit = _partition(gw, third["run_id"])
    assert len(set(refit) & set(incremental)) / len(incremental) > 0.98


def test_a_source_under_another_schema_is_skipped_and_counted(gw, town: Town, agents: dict[str, SyntheticAgent],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A municipality switching to tsunagu-jp/2 (TSUNAGU_SCHEMA) sends every source again; until then, a
    source under the other schema cannot be compared with the rest and is left out of the run, counted."""
    monkeypatch.delenv("TSUNAGU_SCHEMA", raising=False)
    submit_town(gw, town, agents)
    monkeypatch.setenv("TSUNAGU_SCHEMA", "tsunagu-jp/2")
    npo = town.sources["npo"]
    assert ingest(gw, agents["npo"].submit("npo", npo), "import").status == "accepted"  # a /2 snapshot of the NPO
    monkeypatch.delenv("TSUNAGU_SCHEMA")
    stats = run_linkage(gw)
    assert stats["skipped_records"] == len(npo) and stats["sources"] == len(agents) - 1
    assert not any(source == "npo" for source, _ in _assignments(gw, stats["run_id"]))
