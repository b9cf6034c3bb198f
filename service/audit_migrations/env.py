"""Alembic environment: runs on the connection :func:`service.audit_store.migrate_log` hands over, inside its transaction."""

from __future__ import annotations

from alembic import context

from service.audit_store import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
