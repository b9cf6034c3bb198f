"""The persons list read from the run's summary (``run_persons``, written at publish): it agrees with the run's
assignments for every filter, order and page, on SQLite and PostgreSQL, and the 0005 migration fills it for a run
published before the summary existed."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.config import Config
from importlib import resources
from sqlalchemy import delete, select

from tests.support.gateway import submit_town
from gateway import casework, models
from gateway.db import migrate
from gateway.link import run_linkage
from synthetic import Town


def _expected(gw) -> dict[str, tuple[int, frozenset[str]]]:
    a = models.assignments
    with gw.engine.connect() as conn:
        run_id = conn.execute(select(models.current_run.c.run_id)).scalar_one()
        found: dict[str, list[str]] = {}
        for row in conn.execute(select(a.c.person_id, a.c.source).where(a.c.run_id == run_id)):
            found.setdefault(row.person_id, []).append(row.source)
    return {p: (len(s), frozenset(s)) for p, s in found.items()}


def _every(gw, **kw) -> list[dict]:
    out, offset = [], 0
    while True:
        page = casework.list_persons(gw, limit=97, offset=offset, **kw)
        out += page["persons"]
        offset += 97
        if offset >= page["total"]:
            assert len(out) == page["total"]
            return out


def _check(gw) -> None:
    truth = _expected(gw)
    listed = _every(gw)
    assert [p["person_id"] for p in listed] == sorted(truth)
    assert all((p["records"], p["sources"]) == (truth[p["person_id"]][0], len(truth[p["person_id"]][1])) for p in listed)
    school = _every(gw, source="school", sort="records")
    assert {p["person_id"] for p in school} == {p for p, (_, s) in truth.items() if "school" in s}
    assert [(-p["records"], p["person_id"]) for p in school] == sorted((-p["records"], p["person_id"]) for p in school)
    many = _every(gw, min_sources=3, sort="sources")
    assert {p["person_id"] for p in many} == {p for p, (_, s) in truth.items() if len(s) >= 3} and many
    assert [(-p["sources"], p["person_id"]) for p in many] == sorted((-p["sources"], p["person_id"]) for p in many)
    prefix = sorted(truth)[len(truth) // 2][:3]
    assert [p["person_id"] for p in _every(gw, prefix=prefix)] == sorted(p for p in truth if p.startswith(prefix))
    assert casework.list_persons(gw, source="no_such_source")["total"] == 0


def test_persons_list_agrees_with_the_assignments(gw, town: Town, agents) -> None:
    submit_town(gw, town, agents)
    run_linkage(gw)
    _check(gw)
    run_linkage(gw)  # a second run: its own summary; the list follows the current run
    _check(gw)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_migration_fills_the_summary_of_the_current_run(gw, town: Town, agents) -> None:
    submit_town(gw, town, agents)
    run_linkage(gw)
    before = _every(gw, sort="records")
    config = Config()
    config.set_main_option("script_location", str(resources.files("gateway").joinpath("migrations")))
    with gw.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004_delivery")  # as a gateway was before this revision
    migrate(gw.engine)
    assert _every(gw, sort="records") == before
    with gw.engine.begin() as conn:
        conn.execute(delete(models.run_persons))
    assert casework.list_persons(gw)["total"] == 0  # the list reads the summary, not a cache
