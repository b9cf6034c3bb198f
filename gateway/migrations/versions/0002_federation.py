"""Federation tables: federation encodings from the agents, exchanges with peer gateways, handles, handovers.

Revision ID: 0002_federation
Revises: 0001
"""

from __future__ import annotations

from alembic import op

from gateway import models

revision = "0002_federation"
down_revision = "0001"
branch_labels = None
depends_on = None

_TABLES = ("federation_submissions", "federation_records", "federation_nonces", "federation_exchanges",
           "federation_query_items", "federation_handles", "federation_handovers")


def upgrade() -> None:
    """Create the federation tables as ``gateway.models`` defines them."""
    bind = op.get_bind()
    for name in _TABLES:
        models.metadata.tables[name].create(bind)


def downgrade() -> None:
    """Drop the federation tables."""
    bind = op.get_bind()
    for name in reversed(_TABLES):
        models.metadata.tables[name].drop(bind)
