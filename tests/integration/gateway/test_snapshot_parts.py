"""A snapshot in several parts is assembled inside the database: the source's records, their first submissions and
their history come out as a one-part snapshot of the same rows would give, a token sent in two parts is kept once,
and nothing stays staged — on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from gateway import models
from gateway.ingest import ingest
from synthetic.agents import SyntheticAgent
from synthetic import Town


def _records(gw) -> dict[str, tuple]:
    r = models.records
    with gw.engine.connect() as conn:
        rows = conn.execute(select(r.c.token, r.c.submission_id, r.c.first_submission_id, r.c.clk, r.c.present, r.c.blocks,
                                   r.c.attributes).where(r.c.source == "school"))
        return {row.token: tuple(row[1:]) for row in rows}


def _history(gw, submission_id: int) -> dict[str, str]:
    h = models.record_history
    with gw.engine.connect() as conn:
        rows = conn.execute(select(h.c.token, h.c.status).where(h.c.source == "school", h.c.submission_id == submission_id))
        return {row.token: row.status for row in rows}


def test_parts_assemble_in_the_database_as_one_snapshot_would(gw, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    agent, rows = agents["school"], town.sources["school"]
    first = ingest(gw, agent.submit("school", rows[:30]), "import")
    assert first.status == "accepted" and first.accepted == 30
    old = _records(gw)

    # The next snapshot, rows 5–39, in three parts; row 20 travels in parts 1 and 3, row 8 in parts 1 and 2.
    batch = uuid.uuid4().hex
    pieces = [rows[5:17] + [rows[20]], rows[17:29] + [rows[8]], rows[29:40]]
    answers = []
    for n, piece in enumerate(pieces, start=1):
        if n == 3:
            assert _records(gw) == old  # nothing replaced before the last part
        answers.append(ingest(gw, agent.submit("school", piece, extra={"batch_id": batch, "part": n, "parts": 3}), "import"))
    assert [a.status for a in answers] == ["accepted"] * 3
    last = answers[-1]
    assert last.accepted == 35
    assert sum("別の部分" in r["reason"] for r in last.refused) == 2

    now = _records(gw)
    assert len(now) == 35 and all(v[0] == last.submission_id for v in now.values())
    new_tokens = set(now) - set(old)
    assert len(new_tokens) == 10 and all(now[t][1] == last.submission_id for t in new_tokens)
    kept = set(now) & set(old)
    assert len(kept) == 25 and all(now[t][1] == first.submission_id for t in kept)  # a child's first submission stays
    assert all(now[t][2:5] == old[t][2:5] for t in kept)  # the same rows encode the same
    history = _history(gw, last.submission_id)
    assert sorted(history.values()).count("deleted") == 5 and set(old) - set(now) == {t for t, s in history.items() if s == "deleted"}
    assert {t for t, s in history.items() if s == "present"} == set(now)

    # The same rows as one part give the same records and history (contents; the submission ids differ).
    one = ingest(gw, agent.submit("school", rows[5:40]), "import")
    again = _records(gw)
    assert set(again) == set(now) and all(again[t][2:] == now[t][2:] for t in now)
    assert all(again[t][1] == now[t][1] for t in now)
    assert set(_history(gw, one.submission_id).values()) == {"present"}
    with gw.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(models.snapshot_parts)).scalar_one() == 0
