"""Reviewers' decisions on record pairs (link / non_link), binding later linkage runs.

Revision ID: 0003_review_decisions
Revises: 0002_federation
"""

from __future__ import annotations

from alembic import op

from gateway import models

revision = "0003_review_decisions"
down_revision = "0002_federation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the ``review_decisions`` table as ``gateway.models`` defines it."""
    models.metadata.tables["review_decisions"].create(op.get_bind())


def downgrade() -> None:
    """Drop the ``review_decisions`` table."""
    models.metadata.tables["review_decisions"].drop(op.get_bind())
