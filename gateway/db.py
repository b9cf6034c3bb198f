"""Database engines (SQLite in WAL mode, or PostgreSQL through psycopg 3) and migrations run in-process."""

from __future__ import annotations

from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine


#: The largest OFFSET both databases take (a signed 64-bit integer); list routes refuse more with a 422.
MAX_OFFSET = 2**63 - 1


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, full fsync on commit and a busy timeout."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB of page cache per connection
            # Copying the WAL back into the database happens in checkpoint(), off the
            # ingest path (a background job), not inside whichever commit crosses the limit.
            cursor.execute("PRAGMA wal_autocheckpoint=0")
            # After a checkpoint that resets the log, SQLite cuts the file back to this size.
            cursor.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
            cursor.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


#: The write-ahead log is cut back to this size after a large write (it would otherwise stay at its largest burst).
WAL_LIMIT_BYTES = 64 * 1024 * 1024


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


def utcnow() -> datetime:
    """Now in UTC, naive (every timestamp in the database is naive UTC)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
