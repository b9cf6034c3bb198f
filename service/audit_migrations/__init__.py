"""Alembic migrations of a standalone audit log's database (see :func:`service.audit_store.migrate_log`)."""
