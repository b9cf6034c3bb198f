"""Delivery: chained submissions, one owner per source, persisted linkage-run requests, multi-part snapshots.

Existing deployments: each source's owner becomes the agent that last
submitted it (else the first agent registered for it), and a gateway that
holds submissions newer than its last finished run gets a run request.

Revision ID: 0004_delivery
Revises: 0003_review_decisions
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

from gateway import models

revision = "0004_delivery"
down_revision = "0004_doors"  # migrations of one session, chained in merge order
branch_labels = None
depends_on = None

_TABLES = ("submission_chain", "source_owners", "link_requests", "snapshot_parts")


def upgrade() -> None:
    """Create the tables as ``gateway.models`` defines them and fill them for an existing deployment."""
    bind = op.get_bind()
    for name in _TABLES:
        models.metadata.tables[name].create(bind)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    s, a = models.submissions, models.agent_sources
    owners: dict[str, str] = {}
    for row in bind.execute(sa.select(a.c.source, a.c.agent_id).order_by(a.c.agent_id)):
        owners.setdefault(row.source, row.agent_id)
    for row in bind.execute(sa.select(s.c.source, s.c.agent_id).order_by(s.c.id)):
        if row.source in owners:
            owners[row.source] = row.agent_id
    if owners:
        bind.execute(sa.insert(models.source_owners), [{"source": k, "agent_id": v, "since": now} for k, v in owners.items()])
    last_submission = bind.execute(sa.select(sa.func.max(s.c.received_at))).scalar()
    last_run = bind.execute(sa.select(sa.func.max(models.link_runs.c.started_at))
                            .where(models.link_runs.c.status == "done")).scalar()
    if last_submission is not None and (last_run is None or last_submission >= last_run):
        bind.execute(sa.insert(models.link_requests).values(requested_at=now, trigger="upgrade"))


def downgrade() -> None:
    """Drop the delivery tables."""
    bind = op.get_bind()
    for name in reversed(_TABLES):
        models.metadata.tables[name].drop(bind)
