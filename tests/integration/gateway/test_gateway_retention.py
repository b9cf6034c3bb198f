"""Retention: records past their source's retention period are removed, and the purge says what went (pseudonyms only)."""

from __future__ import annotations

from datetime import timedelta

from synthetic import Town
from sqlalchemy import func, select, update

from tests.support.gateway import Home, submit_town
from gateway import models
from gateway.db import utcnow
from gateway.ingest import ingest
from gateway.retention import purge, purges
from synthetic.agents import SyntheticAgent


def test_purge_removes_what_is_past_retention(gw, home: Home, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    submit_town(gw, town, agents)
    ingest(gw, agents["school"].submit("school", town.sources["school"]), "import")
    s = models.submissions
    # The npo source last submitted 400 days ago (its policy keeps 365); school's first snapshot is 1200 days old (keeps 1095).
    with gw.engine.begin() as conn:
        conn.execute(update(s).where(s.c.source == "npo").values(received_at=utcnow() - timedelta(days=400)))
        first_school = conn.execute(select(func.min(s.c.id)).where(s.c.source == "school")).scalar_one()
        conn.execute(update(s).where(s.c.id == first_school).values(received_at=utcnow() - timedelta(days=1200)))
    report = {entry["source"]: entry for entry in purge(gw)}
    assert set(report) == {"npo", "school"}
    assert report["npo"]["records_removed"] == len(town.sources["npo"]) == len(report["npo"]["tokens"])
    assert report["school"]["records_removed"] == 0
    assert report["school"]["history_removed"] == len(town.sources["school"])
    with gw.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(models.records).where(models.records.c.source == "npo")).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(models.records).where(models.records.c.source == "school")).scalar_one() \
            == len(town.sources["school"])
    assert [p["source"] for p in purges(gw)] == ["school", "npo"]
    assert purge(gw) == []
    out = home.cli("purge")
    assert "ありませんでした" in out
    log = (home.path / "logs" / "gateway.log").read_text(encoding="utf-8")
    assert "retention purge npo" in log
    assert any(entry.action == "retention.purge" for entry in gw.audit.entries())
