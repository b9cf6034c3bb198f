"""Service base: the audit log's and the login throttle's tables under Alembic (before, the code created them at runtime);
``users`` and ``sessions`` as their one shared definition (``service.accounts.account_tables``).

Existing deployments already hold the log's and the throttle's tables, made at
runtime from the same table definitions: they are kept as they are, rows and
all (see :mod:`service.schema`). ``users`` and ``sessions`` are remade in the
shared shape with every row kept (:func:`service.schema.upgrade_to_service_base`):
at the gateway the two flags get a server default (``false``).

Revision ID: 0006_service
Revises: 0005_casework
"""

from __future__ import annotations

from alembic import op

from gateway import models
from service import schema

revision = "0006_service"
down_revision = "0005_casework"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the service base's tables where missing, and the log's head row; remake the account tables."""
    schema.upgrade_to_service_base(op.get_bind(), models.users, models.sessions)


def downgrade() -> None:
    """Drop the service base's tables (``users`` and ``sessions`` keep the shared shape)."""
    schema.drop_service_tables(op.get_bind())
