"""The service base both services share: one password library, one engine with foreign keys, one account lifecycle.

Real SQLite files and the escrow's real tables; nothing mocked.
"""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import IntegrityError

from escrow import db as escrow_db
from escrow import identity as escrow_identity
from escrow.errors import EscrowError
from gateway.errors import GatewayError
from service.db import sqlite_engine
from service.errors import Refusal
from service.passwords import hash_password, needs_rehash, verify_password

PASSWORD = "correct horse battery staple"


def _cryptography_phc(password: str, memory_kib: int) -> str:
    """A hash as the escrow wrote it before the service base: bare ``cryptography`` Argon2id, PHC-encoded."""
    kdf = Argon2id(salt=os.urandom(16), length=32, iterations=3, lanes=4, memory_cost=memory_kib)
    return kdf.derive_phc_encoded(password.encode("utf-8"))


def test_hashes_the_escrow_wrote_with_cryptography_still_verify() -> None:
    old = _cryptography_phc(PASSWORD, 64 * 1024)
    assert verify_password(old, PASSWORD)
    assert not verify_password(old, PASSWORD + "x")
    assert not needs_rehash(old), "same parameters as argon2-cffi's RFC 9106 low-memory profile: nothing to upgrade"
    assert needs_rehash(_cryptography_phc(PASSWORD, 32 * 1024))
    assert verify_password(hash_password(PASSWORD), PASSWORD)
    assert not verify_password(None, PASSWORD)


def test_an_escrow_user_with_an_old_hash_signs_in_and_a_weaker_one_is_upgraded(tmp_path) -> None:
    engine = escrow_db.open_engine(str(tmp_path / "escrow.db"))
    escrow_identity.add_user(engine, "sato.hanako", ["approver"], PASSWORD)
    weaker = _cryptography_phc(PASSWORD, 32 * 1024)
    with engine.begin() as conn:
        conn.execute(update(escrow_db.users).values(password_hash=weaker))
    token, user, _ = escrow_identity.login(engine, "sato.hanako", PASSWORD, 30)
    assert user.roles == {"approver"}
    assert escrow_identity.user_for_token(engine, token).username == "sato.hanako"
    with engine.connect() as conn:
        stored = conn.execute(select(escrow_db.users.c.password_hash)).scalar_one()
    assert stored != weaker and stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    with pytest.raises(EscrowError) as refused:
        escrow_identity.login(engine, "sato.hanako", "wrong password here", 30)
    assert (refused.value.status, refused.value.code) == (401, "login_failed")


def test_the_engine_enforces_foreign_keys_for_the_escrow_too(tmp_path) -> None:
    engine = escrow_db.open_engine(str(tmp_path / "escrow.db"))
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(escrow_db.sessions).values(token_hash=b"x" * 32, user_id=999, created_at=escrow_db.utcnow(),
                                                       expires_at=escrow_db.utcnow()))
    other = sqlite_engine(str(tmp_path / "other.db"))
    with other.connect() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1


def test_the_shared_lifecycle_keeps_an_administrator_at_the_escrow(tmp_path) -> None:
    engine = escrow_db.open_engine(str(tmp_path / "escrow.db"))
    escrow_identity.add_user(engine, "admin", ["admin"], PASSWORD)
    with pytest.raises(EscrowError) as exists:
        escrow_identity.add_user(engine, "admin", ["admin"], PASSWORD)
    assert exists.value.code == "user_exists"
    with pytest.raises(EscrowError) as weak:
        escrow_identity.add_user(engine, "ito", ["approver"], "escrow")
    assert weak.value.code == "weak_password"
    with pytest.raises(EscrowError) as unknown:
        escrow_identity.add_user(engine, "ito", ["nobody"], PASSWORD)
    assert unknown.value.code == "unknown_role"
    book = escrow_identity.accounts(engine)
    escrow_identity.add_user(engine, "ito", ["approver"], PASSWORD)
    with pytest.raises(EscrowError) as last:
        book.set_roles("ito", "approver", "admin", "approver")
    assert (last.value.status, last.value.code) == (409, "last_admin")
    book.set_roles("admin", "admin", "ito", "admin,approver")
    book.set_roles("ito", "admin,approver", "admin", "approver")  # another administrator now exists
    assert {u["username"]: u["roles"] for u in book.list()} == {"admin": "approver", "ito": "admin,approver"}


def test_both_services_refuse_with_the_one_refusal_class() -> None:
    assert issubclass(GatewayError, Refusal) and issubclass(EscrowError, Refusal)
    refusal = EscrowError(409, "user_exists", "利用者「x」はすでにいます。")
    assert (refusal.status, refusal.code, refusal.logged) == (409, "user_exists", False)
