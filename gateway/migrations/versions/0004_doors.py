"""Accounts: a reset password must be changed at the next sign-in (``users.must_change_password``).

The login throttle's table (``login_throttle``) is created by
:class:`service.frontdoor.throttle.LoginThrottle` itself, as the audit store
creates its own, because the escrow shares it without Alembic.

Revision ID: 0004_doors
Revises: 0003_review_decisions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_doors"
down_revision = "0004_support"  # migrations of one session, chained in merge order
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``users.must_change_password`` (false for every existing user)."""
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    """Drop ``users.must_change_password``."""
    with op.batch_alter_table("users") as batch:
        batch.drop_column("must_change_password")
