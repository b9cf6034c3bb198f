"""The escrow's tables under Alembic: the baseline equals the tables as they were made before, and such a file is adopted.

Real SQLite files and the PostgreSQL the tests start (tests/support/postgres.py);
the escrow's real ``escrow.db.migrate``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, insert, select, text
from sqlalchemy.engine import URL, Engine

from escrow import db
from service import audit_store
from service.db import make_engine, sqlite_engine
from service.frontdoor import throttle


def _head() -> str:
    config = Config()
    config.set_main_option("script_location", str(resources.files("escrow").joinpath("migrations")))
    return ScriptDirectory.from_config(config).get_current_head()


def _differences(engine: Engine) -> list:
    """What Alembic's autogenerate finds between the database and ``escrow.db.metadata`` with the service base's tables (nothing, when they agree)."""
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), [db.metadata, audit_store.metadata, throttle.metadata])


def _shape(engine: Engine) -> dict:
    """Every column (type, nullability, server default), key and unique constraint of the escrow's tables, as the database reports them."""
    inspector = inspect(engine)
    return {table: {
        "columns": [(c["name"], str(c["type"]), c["nullable"], c.get("default")) for c in inspector.get_columns(table)],
        "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
        "foreign_keys": sorted((tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                               for f in inspector.get_foreign_keys(table)),
        "unique": sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)),
    } for table in sorted(db.metadata.tables)}


def _version(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _fill(engine: Engine) -> None:
    """One row in each table, as the escrow writes them."""
    now = db.utcnow()
    with engine.begin() as conn:
        conn.execute(insert(db.users).values(id=1, username="approver1", roles="approver", password_hash="$argon2id$x",
                                             created_at=now, disabled=True))
        conn.execute(insert(db.sessions).values(token_hash=b"t" * 32, user_id=1, created_at=now, expires_at=now))
        conn.execute(insert(db.requests).values(
            id="req-1", requester="cw1", purpose="child_welfare", legal_basis="児童福祉法第25条", case_ref="case-9",
            justification="理由", max_records=1, approvals_required=2, status="pending", created_at=now,
            gateway_entry="{}", gateway_leaf_index=7, gateway_checkpoint="cp"))
        conn.execute(insert(db.request_records).values(request_id="req-1", position=0, batch_header="h", token="tok",
                                                       ciphertext=b"\x00\x01"))
        conn.execute(insert(db.decisions).values(request_id="req-1", approver="approver1", decision="approve", reason="ok",
                                                 at=now))


def _kept(engine: Engine) -> None:
    """The rows :func:`_fill` wrote are all still there, unchanged."""
    with engine.connect() as conn:
        user = conn.execute(select(db.users)).one()
        assert (user.username, user.roles, user.disabled, user.must_change_password) == ("approver1", "approver", True, False)
        assert conn.execute(select(db.sessions.c.token_hash)).scalar_one() == b"t" * 32
        assert conn.execute(select(db.requests.c.gateway_leaf_index)).scalar_one() == 7
        assert conn.execute(select(db.request_records.c.ciphertext)).scalar_one() == b"\x00\x01"
        assert conn.execute(select(db.decisions.c.reason)).scalar_one() == "ok"


def _new_file_is_migrated_to_the_schema(engine: Engine) -> None:
    db.migrate(engine)
    assert _version(engine) == _head()
    assert _differences(engine) == []
    _fill(engine)
    db.migrate(engine)  # idempotent: a second opening changes nothing
    _kept(engine)


def _file_made_before_migrations_is_stamped_and_kept(engine: Engine) -> None:
    db.metadata.create_all(engine)  # exactly what escrow.db.open_engine did before migrations
    _fill(engine)
    assert _version(engine) is None
    db.migrate(engine)
    assert _version(engine) == _head()
    assert _differences(engine) == []
    _kept(engine)


def _baseline_is_create_all(engine: Engine) -> None:
    db.metadata.create_all(engine)
    before = _shape(engine)
    db.metadata.drop_all(engine)
    db.migrate(engine)
    assert _version(engine) == _head()
    assert _shape(engine) == before
    assert before["users"]["unique"] == [("username",)]
    assert before["request_records"]["primary_key"] == ["request_id", "position"]


def test_the_baseline_makes_the_tables_create_all_made(tmp_path: Path) -> None:
    _baseline_is_create_all(sqlite_engine(str(tmp_path / "escrow.db")))


def test_a_new_sqlite_file_gets_the_schema_by_migration(tmp_path: Path) -> None:
    _new_file_is_migrated_to_the_schema(sqlite_engine(str(tmp_path / "escrow.db")))


def test_a_sqlite_file_made_before_migrations_is_stamped_and_upgraded_without_loss(tmp_path: Path) -> None:
    _file_made_before_migrations_is_stamped_and_kept(sqlite_engine(str(tmp_path / "escrow.db")))


def test_an_older_sqlite_file_without_the_later_user_columns_gets_them(tmp_path: Path) -> None:
    engine = sqlite_engine(str(tmp_path / "escrow.db"))
    db.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE users DROP COLUMN must_change_password"))
        conn.execute(text("ALTER TABLE users DROP COLUMN disabled"))
        conn.execute(text("INSERT INTO users (id, username, roles, password_hash, created_at) "
                          "VALUES (1, 'admin', 'admin', 'h', '2026-01-01 00:00:00')"))
    db.migrate(engine)
    assert _version(engine) == _head()
    assert _differences(engine) == []
    with engine.connect() as conn:
        row = conn.execute(select(db.users)).one()
    assert (row.username, row.disabled, row.must_change_password) == ("admin", False, False)


def test_open_engine_migrates_and_the_escrows_own_tables_are_all_versioned(tmp_path: Path) -> None:
    engine = db.open_engine(str(tmp_path / "escrow.db"))
    assert _version(engine) == _head()
    assert set(db.metadata.tables) <= set(inspect(engine).get_table_names())


@pytest.fixture
def pg_engine(fresh_postgres_url: URL) -> Iterator[Engine]:
    engine = make_engine(fresh_postgres_url.render_as_string(hide_password=False))
    yield engine
    engine.dispose()


def test_a_new_postgresql_database_gets_the_schema_by_migration(pg_engine: Engine) -> None:
    _new_file_is_migrated_to_the_schema(pg_engine)


def test_on_postgresql_the_baseline_makes_the_tables_create_all_made(pg_engine: Engine) -> None:
    _baseline_is_create_all(pg_engine)


def test_a_postgresql_database_made_before_migrations_is_stamped_and_upgraded_without_loss(pg_engine: Engine) -> None:
    _file_made_before_migrations_is_stamped_and_kept(pg_engine)
