"""Support records, frozen screening lists, return lists to departments, and pooled counts from towns.

Revision ID: 0004_support
Revises: 0003_review_decisions
"""

from __future__ import annotations

from alembic import op

from gateway import models

revision = "0004_support"
down_revision = "0003_review_decisions"
branch_labels = None
depends_on = None

_TABLES = ("screening_snapshots", "screening_flags", "support_cases", "support_events", "return_lists", "return_list_items",
           "pooled_reports")


def upgrade() -> None:
    """Create the support tables as ``gateway.models`` defines them."""
    for name in _TABLES:
        models.metadata.tables[name].create(op.get_bind())


def downgrade() -> None:
    """Drop the support tables."""
    for name in reversed(_TABLES):
        models.metadata.tables[name].drop(op.get_bind())
