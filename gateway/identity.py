"""Users, roles and sessions: who is calling, and may their role do this (asked of the policy)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update

from gateway import models
from gateway.core import Gateway
from gateway.db import utcnow
from gateway.errors import GatewayError
from gateway.security import hash_password, needs_rehash, new_token, token_digest, verify_password

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 12


@dataclass(frozen=True, slots=True)
class User:
    """An authenticated user."""

    id: int
    username: str
    role: str


def add_user(gw: Gateway, username: str, role: str, password: str, actor: str = "cli") -> User:
    """Create a user with ``role`` (a role of the policy); the password is stored as an Argon2id hash only."""
    if not _USERNAME.match(username):
        raise GatewayError(422, "invalid_username", "利用者名は英数字と . _ @ - で 64 文字以内にしてください。")
    if role not in gw.policy.roles:
        raise GatewayError(422, "unknown_role", f"ロール「{role}」はポリシーにありません（使えるもの: {', '.join(gw.policy.roles)}）。")
    if len(password) < MIN_PASSWORD:
        raise GatewayError(422, "weak_password", f"パスワードは {MIN_PASSWORD} 文字以上にしてください。")
    with gw.engine.begin() as conn:
        if conn.execute(select(models.users.c.id).where(models.users.c.username == username)).first():
            raise GatewayError(409, "user_exists", f"利用者「{username}」はすでにいます。")
        user_id = conn.execute(insert(models.users).values(username=username, role=role, password_hash=hash_password(password),
                                                           disabled=False, created_at=utcnow())).inserted_primary_key[0]
    gw.record(actor, "admin", "user.add", "ok", target=f"{username}:{role}")
    return User(user_id, username, role)


def login(gw: Gateway, username: str, password: str) -> tuple[str, User, datetime]:
    """Check the password and open a session; returns the bearer token (shown once), the user and the expiry."""
    with gw.engine.begin() as conn:
        row = conn.execute(select(models.users).where(models.users.c.username == username)).first()
        if not verify_password(row.password_hash if row else None, password) or row is None or row.disabled:
            raise GatewayError(401, "login_failed", "利用者名またはパスワードが違います。")
        if needs_rehash(row.password_hash):
            conn.execute(update(models.users).where(models.users.c.id == row.id).values(password_hash=hash_password(password)))
        token = new_token()
        now = utcnow()
        expires = now + timedelta(minutes=gw.settings.session_minutes)
        conn.execute(delete(models.sessions).where(models.sessions.c.expires_at < now))
        conn.execute(insert(models.sessions).values(token_hash=token_digest(token), user_id=row.id, created_at=now, expires_at=expires))
    return token, User(row.id, row.username, row.role), expires


def logout(gw: Gateway, token: str) -> None:
    """End the session of ``token``."""
    with gw.engine.begin() as conn:
        conn.execute(delete(models.sessions).where(models.sessions.c.token_hash == token_digest(token)))


def user_for_token(gw: Gateway, token: str) -> User:
    """The user behind a live session token; 401 if the token is unknown or expired."""
    with gw.engine.connect() as conn:
        row = conn.execute(
            select(models.users.c.id, models.users.c.username, models.users.c.role, models.users.c.disabled, models.sessions.c.expires_at)
            .join(models.sessions, models.sessions.c.user_id == models.users.c.id)
            .where(models.sessions.c.token_hash == token_digest(token))
        ).first()
    if row is None:
        raise GatewayError(401, "invalid_token", "認証トークンが無効です。ログインし直してください。")
    if row.expires_at <= utcnow():
        raise GatewayError(401, "token_expired", "認証トークンの有効期限が切れています。ログインし直してください。")
    if row.disabled:
        raise GatewayError(401, "user_disabled", "この利用者は無効になっています。")
    return User(row.id, row.username, row.role)


def authorize(gw: Gateway, user: User, permission: str) -> None:
    """403 unless the policy lets ``user``'s role hold ``permission``."""
    decision = gw.policy.may(user.role, permission)
    if not decision.allowed:
        raise GatewayError(403, "forbidden", decision.reason)


def list_users(gw: Gateway) -> list[dict]:
    """Every user (no password hashes)."""
    with gw.engine.connect() as conn:
        rows = conn.execute(select(models.users.c.username, models.users.c.role, models.users.c.disabled,
                                   models.users.c.created_at).order_by(models.users.c.username)).all()
    return [dict(r._mapping) for r in rows]
