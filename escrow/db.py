"""The escrow's own store (SQLite through SQLAlchemy): users, sessions, re-identification requests and decisions.

The tables are under Alembic (``escrow/migrations``, run by :func:`migrate`
whenever the file is opened). The escrow's audit log
(:mod:`service.audit_store`) lives in the same database file. Nothing here
is secret or identifying: password hashes, SHA-256 of session tokens,
request metadata, sealed records (ciphertexts only) and timestamps. Opened identities are never stored; a release leaves only
``released_at``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from importlib import resources

from alembic import command
from alembic.config import Config
from sqlalchemy import Column, DateTime, ForeignKey, Integer, LargeBinary, MetaData, String, Table, Text, inspect, select, text
from sqlalchemy.engine import Connection, Engine

from service.accounts import account_tables
from service.db import sqlite_engine, utcnow  # utcnow: the escrow modules take the shared clock as db.utcnow

metadata = MetaData()

#: one definition with the gateway's (service.accounts); the escrow's users hold a set of roles
users, sessions = account_tables(
    metadata,
    #: one or more of escrow.identity.ROLES, comma-separated
    Column("roles", String(100), nullable=False),
)

requests = Table(
    "requests",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("requester", String(64), nullable=False),
    Column("purpose", String(100), nullable=False),
    Column("legal_basis", String(100), nullable=False),
    Column("case_ref", String(100), nullable=False),
    Column("justification", Text, nullable=False),
    Column("max_records", Integer, nullable=False),
    Column("approvals_required", Integer, nullable=False),
    #: pending → approved → released, or rejected, or expired
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("approved_at", DateTime),
    Column("closed_at", DateTime),
    Column("released_at", DateTime),
    #: the gateway's audit evidence, kept as received so an auditor can re-check it
    Column("gateway_entry", Text, nullable=False),
    Column("gateway_leaf_index", Integer, nullable=False),
    Column("gateway_checkpoint", Text, nullable=False),
)

request_records = Table(
    "request_records",
    metadata,
    Column("request_id", String(100), ForeignKey("requests.id"), primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("batch_header", Text, nullable=False),
    Column("token", String(200), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
)

decisions = Table(
    "decisions",
    metadata,
    Column("request_id", String(100), ForeignKey("requests.id"), primary_key=True),
    Column("approver", String(64), primary_key=True),
    Column("decision", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", DateTime, nullable=False),
)


def open_engine(path: str) -> Engine:
    """The engine on the escrow's SQLite file (:mod:`service.db`: WAL, full fsync, foreign keys), its tables migrated to the newest revision."""
    engine = sqlite_engine(path)
    migrate(engine)
    return engine


#: The revision that equals the schema ``metadata.create_all`` made before the escrow had migrations.
BASELINE = "0001_baseline"


def migrate(engine: Engine) -> None:
    """Bring the escrow's tables up to the newest Alembic revision (idempotent).

    A file made before migrations (the tables, no ``alembic_version``) is
    recognised: it is first given any column the baseline has and it lacks,
    then stamped at :data:`BASELINE`, then upgraded like any other; no row is
    touched.
    """
    config = Config()
    config.set_main_option("script_location", str(resources.files("escrow").joinpath("migrations")))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        present = set(inspect(connection).get_table_names())
        if "alembic_version" not in present and present & set(metadata.tables):
            _add_missing_columns(connection)
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")


def _add_missing_columns(connection: Connection) -> None:
    """Give an unversioned file the columns the baseline added to its tables before migrations.

    Files made before those columns existed lack ``users.disabled`` and
    ``users.must_change_password``; both have a server default, so
    ``ALTER TABLE … ADD COLUMN`` is all it takes.
    """
    inspector = inspect(connection)
    for table in metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.server_default is not None:
                ddl = column.type.compile(dialect=connection.dialect)
                default = column.server_default.arg.compile(dialect=connection.dialect)
                connection.execute(text(f'ALTER TABLE {table.name} ADD COLUMN {column.name} {ddl} NOT NULL DEFAULT {default}'))


def filed_request_ids(engine: Engine, ids: list[str]) -> set[str]:
    """Which of ``ids`` are requests filed here."""
    with engine.connect() as conn:
        return set(conn.execute(select(requests.c.id).where(requests.c.id.in_(ids))).scalars())


def iso(value: datetime | None) -> str | None:
    """A stored (naive UTC) time as ISO 8601 with its offset."""
    return value.replace(tzinfo=timezone.utc).isoformat(timespec="seconds") if value else None
