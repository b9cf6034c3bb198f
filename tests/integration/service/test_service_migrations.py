"""The service base's tables (audit log, login throttle) under Alembic at both services: a fresh database and one the old code made.

Before ``0006_service`` (gateway) and ``0002_service`` (escrow) the code
created these tables at runtime; :func:`_old_runtime_creation` repeats what it
ran, word for word. Real SQLite files and the PostgreSQL the tests start; the
services' real ``migrate``.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Callable, Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect, insert, select
from sqlalchemy.engine import URL, Engine
from sqlalchemy.schema import CreateTable

from escrow import db as escrow_db
from gateway import db as gateway_db
from gateway import models
from service import audit_store, schema
from service.db import make_engine, sqlite_engine
from service.frontdoor import throttle

_NUMBERS = itertools.count()


def _upgrade_to(package: str, revision: str) -> Callable[[Engine], None]:
    def run(engine: Engine) -> None:
        config = Config()
        config.set_main_option("script_location", str(resources.files(package).joinpath("migrations")))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    return run


#: per service: the revision before the service tables came under Alembic, the new one, its migrate, its own metadata
SERVICES = {
    "gateway": ("0005_casework", "0006_service", gateway_db.migrate, models.metadata),
    "escrow": ("0001_baseline", "0002_service", escrow_db.migrate, escrow_db.metadata),
}
#: per service: its users and sessions tables (service.accounts.account_tables) and its roles column
ACCOUNTS = {"gateway": (models.users, models.sessions, "role"), "escrow": (escrow_db.users, escrow_db.sessions, "roles")}


def _old_runtime_creation(engine: Engine) -> None:
    """What ``AuditStore(engine, …)`` and ``LoginThrottle(engine)`` ran before the migrations made their tables."""
    with engine.begin() as conn:
        for table in audit_store.metadata.sorted_tables:
            conn.execute(CreateTable(table, if_not_exists=True))
        conn.execute(audit_store.CREATE_HEAD)
    throttle.metadata.create_all(engine, checkfirst=True)


def _version(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _shape(engine: Engine) -> dict:
    inspector = inspect(engine)
    return {t.name: {
        "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(t.name)],
        "primary_key": inspector.get_pk_constraint(t.name)["constrained_columns"],
        "indexes": sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(t.name)),
    } for t in schema.SERVICE_TABLES}


def _differences(engine: Engine, own) -> list:
    """Autogenerate's differences between the database and the service's tables with the service base's (none when they agree)."""
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), [own, audit_store.metadata, throttle.metadata])


def _fill(engine: Engine, service: str) -> None:
    users, sessions, roles = ACCOUNTS[service]
    with engine.begin() as conn:
        conn.execute(insert(users).values(id=7, username="admin", password_hash="$argon2id$x", disabled=True,
                                          created_at=datetime(2026, 1, 1), must_change_password=True, **{roles: "admin"}))
        conn.execute(insert(sessions).values(token_hash=b"t" * 32, user_id=7, created_at=datetime(2026, 1, 1),
                                             expires_at=datetime(2026, 1, 2)))
        conn.execute(audit_store._head.update().values(size=1))
        conn.execute(insert(audit_store._entries).values(idx=0, body="{}", subtrees=b"\x01" * 32, checkpoint="cp"))
        conn.execute(insert(audit_store._cosignatures).values(witness="w", size=1, line="— w sig"))
        conn.execute(insert(throttle.login_throttle).values(kind="account", key="cw1", failures=3,
                                                            last_failure_at=datetime(2026, 1, 1), locked=True))


def _kept(engine: Engine, service: str) -> None:
    users, sessions, roles = ACCOUNTS[service]
    with engine.connect() as conn:
        user = conn.execute(select(users)).one()
        assert (user.id, user.username, user._mapping[roles], user.disabled, user.must_change_password) == (7, "admin", "admin", True, True)
        assert conn.execute(select(sessions.c.token_hash, sessions.c.user_id)).one() == (b"t" * 32, 7)
        assert conn.execute(select(audit_store._head.c.size)).scalar_one() == 1
        assert conn.execute(select(audit_store._entries.c.subtrees)).scalar_one() == b"\x01" * 32
        assert conn.execute(select(audit_store._cosignatures.c.line)).scalar_one() == "— w sig"
        row = conn.execute(select(throttle.login_throttle)).one()
        assert (row.key, row.failures, bool(row.locked)) == ("cw1", 3, True)


def _fresh_database_gets_the_tables_by_migration(engine: Engine, service: str) -> None:
    _before, new, migrate, own = SERVICES[service]
    migrate(engine)
    assert _version(engine) == new
    assert _differences(engine, own) == []
    with engine.connect() as conn:
        assert conn.execute(select(audit_store._head.c.size)).scalar_one() == 0  # the head row comes with the migration
    store = audit_store.AuditStore(engine, None, "tsunagu.test/000000")
    assert store.size() == 0 and throttle.LoginThrottle(engine).lockouts() == []


def _old_database_is_upgraded_in_place(engine: Engine, service: str) -> None:
    before, new, migrate, own = SERVICES[service]
    _upgrade_to(service, before)(engine)
    _old_runtime_creation(engine)
    old_shape = _shape(engine)
    _fill(engine, service)
    migrate(engine)
    assert _version(engine) == new
    assert _differences(engine, own) == []
    assert _shape(engine) == old_shape
    _kept(engine, service)
    migrate(engine)  # idempotent
    _kept(engine, service)
    _accounts_have_the_shared_shape(engine, service)


def _accounts_have_the_shared_shape(engine: Engine, service: str) -> None:
    """``users`` and ``sessions`` as the one definition says, server defaults included; a new user gets the next id."""
    users, sessions, roles = ACCOUNTS[service]
    with engine.connect() as conn:
        found = compare_metadata(MigrationContext.configure(conn, opts={"compare_server_default": True}), users.metadata)
    assert [d for d in found if _about_accounts(d)] == []
    inspector = inspect(engine)
    assert [c["type"].length for c in inspector.get_columns("users") if c["name"] == "password_hash"] == [256]
    assert [f["options"].get("ondelete") for f in inspector.get_foreign_keys("sessions")] == ["CASCADE"]
    assert [i["column_names"] for i in inspector.get_indexes("sessions")] == [["expires_at"]]
    with engine.begin() as conn:
        conn.execute(insert(users).values(username="second", password_hash="h", created_at=datetime(2026, 1, 1),
                                          **{roles: "admin"}))
        assert conn.execute(select(users.c.id).where(users.c.username == "second")).scalar_one() == 8
        assert conn.execute(select(users.c.disabled).where(users.c.username == "second")).scalar_one() is False


def _about_accounts(difference) -> bool:
    """True if an autogenerate difference concerns ``users`` or ``sessions``."""
    text = repr(difference)
    return "'users'" in text or "'sessions'" in text or "users" in getattr(difference, "table_name", "")


def _same_shape_either_way(fresh: Engine, old: Engine, service: str) -> None:
    before, _new, migrate, _own = SERVICES[service]
    migrate(fresh)
    _upgrade_to(service, before)(old)
    _old_runtime_creation(old)
    assert _shape(fresh) == _shape(old)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_new_sqlite_database_gets_the_service_tables_by_migration(tmp_path: Path, service: str) -> None:
    _fresh_database_gets_the_tables_by_migration(sqlite_engine(str(tmp_path / "s.db")), service)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_sqlite_database_the_old_code_made_is_upgraded_in_place(tmp_path: Path, service: str) -> None:
    _old_database_is_upgraded_in_place(sqlite_engine(str(tmp_path / "s.db")), service)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_on_sqlite_the_migration_makes_what_the_old_code_made(tmp_path: Path, service: str) -> None:
    _same_shape_either_way(sqlite_engine(str(tmp_path / "a.db")), sqlite_engine(str(tmp_path / "b.db")), service)


def test_an_escrow_file_made_before_any_migration_keeps_its_log_and_throttle(tmp_path: Path) -> None:
    engine = sqlite_engine(str(tmp_path / "escrow.db"))
    escrow_db.metadata.create_all(engine)  # what escrow.db.open_engine did before migrations
    _old_runtime_creation(engine)
    _fill(engine, "escrow")
    escrow_db.migrate(engine)
    assert _version(engine) == "0002_service"
    _kept(engine, "escrow")


@pytest.fixture
def pg_engines(postgres_url: URL) -> Iterator[Callable[[], Engine]]:
    from tests.support import postgres as _postgres

    made: list[Engine] = []

    def new() -> Engine:
        url = _postgres.create_database(postgres_url, f"service_migrations_{next(_NUMBERS)}")
        made.append(make_engine(url.render_as_string(hide_password=False)))
        return made[-1]

    yield new
    for engine in made:
        engine.dispose()


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_new_postgresql_database_gets_the_service_tables_by_migration(pg_engines, service: str) -> None:
    _fresh_database_gets_the_tables_by_migration(pg_engines(), service)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_postgresql_database_the_old_code_made_is_upgraded_in_place(pg_engines, service: str) -> None:
    _old_database_is_upgraded_in_place(pg_engines(), service)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_on_postgresql_the_migration_makes_what_the_old_code_made(pg_engines, service: str) -> None:
    _same_shape_either_way(pg_engines(), pg_engines(), service)
