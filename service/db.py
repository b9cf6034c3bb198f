"""The one SQLAlchemy engine factory of both services (SQLite in WAL mode with foreign keys enforced, or PostgreSQL).

Every SQLite connection gets the same pragmas: WAL with full fsync (a commit
survives power loss), a busy timeout (writers in other threads or processes
queue instead of failing) and ``foreign_keys=ON`` (SQLite ignores declared
foreign keys unless each connection asks; PostgreSQL always enforces them).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

#: After a checkpoint that resets the write-ahead log, SQLite cuts the file back to this size.
WAL_LIMIT_BYTES = 64 * 1024 * 1024


def make_engine(url: str, *, manual_checkpoint: bool = False) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` or a PostgreSQL URL).

    ``manual_checkpoint``: SQLite does not copy the log back into the database
    inside whichever commit crosses its threshold; the caller runs
    checkpoints itself, off the hot path (the gateway's background job).
    """
    if not url.startswith("sqlite"):
        return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB of page cache per connection
        if manual_checkpoint:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        cursor.close()

    return engine


def sqlite_engine(path: str) -> Engine:
    """:func:`make_engine` on the SQLite file at ``path``."""
    return make_engine(f"sqlite:///{path}")


def utcnow() -> datetime:
    """Now in UTC, naive (every timestamp both services store is naive UTC)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
