"""The escrow's own users, passwords and sessions: it takes nobody's word for who is asking (trust boundary 3).

Passwords are Argon2id PHC strings from ``cryptography`` (RFC 9106 second
recommended option: m = 64 MiB, t = 3, p = 4; the parameters and salt travel
in the string). Session tokens are 256-bit random strings; the database keeps
only their SHA-256, and they expire ``session_minutes`` after sign-in.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine

from escrow import db
from escrow.errors import EscrowError

ROLES = {
    "caseworker": "ケースワーカー（再識別の申請・開示の受け取り）",
    "approver": "承認者（再識別の承認・却下）",
    "custodian": "鍵管理者（開封・封印）",
    "auditor": "監査担当（申請一覧・監査ログの書き出し）",
    "admin": "管理者（封印）",
}
MIN_PASSWORD = 12
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True)
class User:
    """A signed-in user of the escrow and the roles they hold (a supervisor may be caseworker and approver)."""

    username: str
    roles: frozenset[str]

    @property
    def label(self) -> str:
        """The roles as written in the audit log."""
        return ",".join(sorted(self.roles))


def hash_password(password: str) -> str:
    """The Argon2id PHC string of ``password``."""
    kdf = Argon2id(salt=os.urandom(16), length=32, iterations=3, lanes=4, memory_cost=64 * 1024)
    return kdf.derive_phc_encoded(password.encode("utf-8"))


#: Checked against when the user does not exist, so the time taken does not reveal user names.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def _password_matches(phc: str | None, password: str) -> bool:
    try:
        Argon2id.verify_phc_encoded(password.encode("utf-8"), phc or _DUMMY_HASH)
    except InvalidKey:
        return False
    return phc is not None


def add_user(engine: Engine, username: str, roles: list[str], password: str) -> User:
    """Create a user holding ``roles``; the password is kept as an Argon2id hash only."""
    if not _USERNAME.match(username):
        raise EscrowError(422, "invalid_username", "利用者名は英数字と . _ @ - で 64 文字以内にしてください。")
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise EscrowError(422, "unknown_role", f"ロール「{'、'.join(unknown)}」はありません（使えるもの: {', '.join(ROLES)}）。")
    if len(password) < MIN_PASSWORD:
        raise EscrowError(422, "weak_password", f"パスワードは {MIN_PASSWORD} 文字以上にしてください。")
    with engine.begin() as conn:
        if conn.execute(select(db.users.c.id).where(db.users.c.username == username)).first():
            raise EscrowError(409, "user_exists", f"利用者「{username}」は既にいます。")
        conn.execute(insert(db.users).values(username=username, roles=",".join(sorted(set(roles))),
                                             password_hash=hash_password(password), created_at=db.utcnow()))
    return User(username, frozenset(roles))


def login(engine: Engine, username: str, password: str, session_minutes: float) -> tuple[str, User, datetime]:
    """Check the password and open a session: the bearer token (shown once), the user and the expiry."""
    with engine.connect() as conn:
        row = conn.execute(select(db.users).where(db.users.c.username == username)).first()
    if not _password_matches(row.password_hash if row else None, password) or row is None:
        raise EscrowError(401, "login_failed", "利用者名またはパスワードが違います。")
    token = secrets.token_urlsafe(32)
    now = db.utcnow()
    expires = now + timedelta(minutes=session_minutes)
    with engine.begin() as conn:
        conn.execute(delete(db.sessions).where(db.sessions.c.expires_at < now))
        conn.execute(insert(db.sessions).values(token_hash=_digest(token), user_id=row.id, created_at=now, expires_at=expires))
    return token, User(row.username, frozenset(row.roles.split(","))), expires


def logout(engine: Engine, token: str) -> None:
    """End the session of ``token``."""
    with engine.begin() as conn:
        conn.execute(delete(db.sessions).where(db.sessions.c.token_hash == _digest(token)))


def user_for_token(engine: Engine, token: str) -> User:
    """The user of a live session; 401 if the token is unknown or has expired."""
    with engine.connect() as conn:
        row = conn.execute(
            select(db.users.c.username, db.users.c.roles, db.sessions.c.expires_at)
            .join(db.sessions, db.sessions.c.user_id == db.users.c.id)
            .where(db.sessions.c.token_hash == _digest(token))
        ).first()
    if row is None:
        raise EscrowError(401, "invalid_token", "認証トークンが無効です。ログインし直してください。")
    if row.expires_at <= db.utcnow():
        raise EscrowError(401, "token_expired", "認証トークンの有効期限が切れています。ログインし直してください。")
    return User(row.username, frozenset(row.roles.split(",")))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()
