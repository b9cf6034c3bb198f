"""Service base: the audit log's and the login throttle's tables under Alembic (before, the code created them at runtime);
``users`` and ``sessions`` as their one shared definition (``service.accounts.account_tables``).

Existing deployments already hold the log's and the throttle's tables, made at
runtime from the same table definitions: they are kept as they are, rows and
all (see :mod:`service.schema`). ``users`` and ``sessions`` are remade in the
shared shape with every row kept (:func:`service.schema.upgrade_to_service_base`):
at the escrow ``password_hash`` widens to 256 characters, a deleted user's
sessions go with them (``ON DELETE CASCADE``) and ``sessions.expires_at`` is indexed.

Revision ID: 0002_service
Revises: 0001_baseline
"""

from __future__ import annotations

from alembic import op

from escrow import db
from service import schema

revision = "0002_service"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the service base's tables where missing, and the log's head row; remake the account tables."""
    schema.upgrade_to_service_base(op.get_bind(), db.users, db.sessions)


def downgrade() -> None:
    """Drop the service base's tables (``users`` and ``sessions`` keep the shared shape)."""
    schema.drop_service_tables(op.get_bind())
