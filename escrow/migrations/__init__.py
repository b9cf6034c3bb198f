"""Alembic migrations of the escrow's tables (users, sessions, requests, their records and decisions)."""
