"""The audit log's tables, on a database of their own; a log made before migrations already has them and is kept.

Revision ID: 0001_audit_log
Revises:
"""

from __future__ import annotations

from alembic import op

from service import schema

revision = "0001_audit_log"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the log's tables where missing (:func:`service.schema.create_service_tables`)."""
    schema.create_service_tables(op.get_bind(), schema.AUDIT_TABLES)


def downgrade() -> None:
    """Drop the log's tables."""
    schema.drop_service_tables(op.get_bind(), schema.AUDIT_TABLES)
