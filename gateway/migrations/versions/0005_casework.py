"""Casework: a per-person summary of each run (records, sources), written at publish, for the persons list.

Existing deployments: the current run's summary is computed from its assignments.

Revision ID: 0005_casework
Revises: 0004_delivery
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway import models

revision = "0005_casework"
down_revision = "0004_delivery"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``run_persons`` as ``gateway.models`` defines it and fill it for the current run."""
    from gateway.link import person_summaries  # the same rows a run writes at publish

    bind = op.get_bind()
    models.run_persons.create(bind)
    run_id = bind.execute(sa.select(models.current_run.c.run_id).where(models.current_run.c.id == 1)).scalar()
    if run_id is None:
        return
    a = models.assignments
    members: dict[str, list[tuple[str, str]]] = {}
    for row in bind.execute(sa.select(a.c.person_id, a.c.source, a.c.token).where(a.c.run_id == run_id)):
        members.setdefault(row.person_id, []).append((row.source, row.token))
    rows = person_summaries(run_id, list(members.values()), list(members))
    for i in range(0, len(rows), 5_000):
        bind.execute(sa.insert(models.run_persons), rows[i:i + 5_000])


def downgrade() -> None:
    """Drop the summary (the persons list then has nothing to read: downgrade the code with it)."""
    models.run_persons.drop(op.get_bind())
