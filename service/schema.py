"""The service base's tables in each service's database (the audit log, the login throttle) and the one Alembic step that creates them.

The gateway's migration ``0006_service`` and the escrow's ``0002_service``
are one step, :func:`upgrade_to_service_base` (and :func:`drop_service_tables`
down); a standalone audit log (``service/audit_migrations``) runs
:func:`create_service_tables` for the log's tables alone. A step that a
released revision runs is frozen: a later change to these tables is a new
function and a new revision in each service.

Databases made before these tables were under Alembic already hold them:
the code then created exactly these ``Table`` objects at runtime
(``CREATE TABLE IF NOT EXISTS`` for the log, ``create_all`` for the throttle),
so a table that is there has this shape and is left as it is, rows and all.
"""

from __future__ import annotations

from sqlalchemy import Table, inspect
from sqlalchemy.engine import Connection

from service import audit_store
from service.accounts import rebuild_account_tables
from service.frontdoor import throttle

#: The audit log's tables, parents first.
AUDIT_TABLES: tuple[Table, ...] = tuple(audit_store.metadata.sorted_tables)
#: Every table of the service base a service keeps in its own database.
SERVICE_TABLES: tuple[Table, ...] = AUDIT_TABLES + tuple(throttle.metadata.sorted_tables)


def create_service_tables(bind: Connection, tables: tuple[Table, ...] = SERVICE_TABLES) -> list[str]:
    """Create each of ``tables`` that is missing, then the log's head row if missing; the names created.

    Meant for a migration's ``upgrade`` (``op.get_bind()``).
    """
    present = set(inspect(bind).get_table_names())
    created = []
    for table in tables:
        if table.name not in present:
            table.create(bind)
            created.append(table.name)
    if any(t.name == "audit_head" for t in tables):
        bind.execute(audit_store.CREATE_HEAD)
    return created


def upgrade_to_service_base(bind: Connection, users: Table, sessions: Table) -> None:
    """The services' step onto the service base (gateway ``0006_service``, escrow ``0002_service``).

    The log's and the throttle's tables where missing, with the log's head row
    (:func:`create_service_tables`); then the service's ``users`` and ``sessions``
    remade in the shared shape, every row kept (:func:`service.accounts.rebuild_account_tables`).
    """
    create_service_tables(bind)
    rebuild_account_tables(bind, users, sessions)


def drop_service_tables(bind: Connection, tables: tuple[Table, ...] = SERVICE_TABLES) -> None:
    """The migrations' ``downgrade``: drop ``tables`` (the audit log with them: only for a database being discarded)."""
    for table in reversed(tables):
        table.drop(bind, checkfirst=True)
