"""The gateway's database: the engine (:mod:`service.db`), WAL checkpoints and Alembic migrations run in-process."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from service.db import WAL_LIMIT_BYTES, utcnow

#: ``utcnow`` is the services' shared clock, named here too because every gateway module takes its time from here.
__all__ = ["MAX_OFFSET", "checkpoint", "migrate", "utcnow", "wal_path"]


#: The largest OFFSET both databases take (a signed 64-bit integer); list routes refuse more with a 422.
MAX_OFFSET = 2**63 - 1


def wal_path(engine: Engine) -> Path | None:
    """SQLite's write-ahead log file (None for PostgreSQL or an in-memory database)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    return Path(database + "-wal") if database and database != ":memory:" else None


def checkpoint(engine: Engine, limit: int = WAL_LIMIT_BYTES) -> None:
    """SQLite: copy the write-ahead log back into the database without blocking readers or writers; once the
    log has grown past ``limit`` (a large submission or run), also reset and truncate it."""
    wal = wal_path(engine)
    if wal is None:
        return
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        try:
            large = wal.stat().st_size > limit
        except FileNotFoundError:
            large = False
        if large:
            # TRUNCATE waits (busy timeout) for the current writer and readers, then empties the file.
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def migrate(engine: Engine) -> None:
    """Bring the schema up to the newest Alembic revision (idempotent)."""
    config = Config()
    config.set_main_option("script_location", str(resources.files("gateway").joinpath("migrations")))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
