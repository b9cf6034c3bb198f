"""Users, roles and sessions: who is calling, and may their role do this (asked of the policy).

The account lifecycle lives here too: create, disable, re-enable, delete,
change role, reset the password (a temporary one the user must change at the
next sign-in), change one's own password, and lift a login lock. Each change
commits with its audit entry in one transaction. The password rule and the
login throttle are shared with the escrow (:mod:`keys.frontdoor`).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from gateway import models
from gateway.core import Gateway
from gateway.db import utcnow
from gateway.errors import GatewayError
from gateway.security import hash_password, needs_rehash, new_token, token_digest, verify_password
from keys.frontdoor.passwords import MIN_LENGTH, WeakPassword, check_password
from keys.frontdoor.throttle import ACCOUNT, ADDRESS, LoginRefused, valid_lock_key

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = MIN_LENGTH
#: the permission that makes a user an administrator of accounts
MANAGE = "users.manage"


@dataclass(frozen=True, slots=True)
class User:
    """An authenticated user; ``must_change_password`` after a reset, until they choose their own."""

    id: int
    username: str
    role: str
    must_change_password: bool = False


def _check_password(username: str, password: str) -> None:
    try:
        check_password(password, username, ("tsunagu", "gateway"))
    except WeakPassword as exc:
        raise GatewayError(422, "weak_password", str(exc)) from None


def _check_role(gw: Gateway, role: str) -> None:
    if role not in gw.policy.roles:
        raise GatewayError(422, "unknown_role", f"ロール「{role}」はポリシーにありません（使えるもの: {', '.join(gw.policy.roles)}）。")


def add_user(gw: Gateway, username: str, role: str, password: str, actor: str = "cli") -> User:
    """Create a user with ``role`` (a role of the policy); the password is stored as an Argon2id hash only."""
    if not _USERNAME.match(username):
        raise GatewayError(422, "invalid_username", "利用者名は英数字と . _ @ - で 64 文字以内にしてください。")
    _check_role(gw, role)
    _check_password(username, password)
    with gw.engine.begin() as conn:
        if conn.execute(select(models.users.c.id).where(models.users.c.username == username)).first():
            raise GatewayError(409, "user_exists", f"利用者「{username}」はすでにいます。")
        user_id = conn.execute(insert(models.users).values(username=username, role=role, password_hash=hash_password(password),
                                                           disabled=False, must_change_password=False,
                                                           created_at=utcnow())).inserted_primary_key[0]
        gw.record(actor, "admin", "user.add", "ok", target=f"{username}:{role}", connection=conn)
    return User(user_id, username, role)


def login(gw: Gateway, username: str, password: str, address: str | None = None) -> tuple[str, User, datetime]:
    """Check the password and open a session; returns the bearer token (shown once), the user and the expiry.

    The throttle is asked first (per account and per client ``address``): a
    locked account or an address told to wait is refused without the
    password being checked, so even the right password does not sign in.
    """
    with gw.engine.connect() as conn:
        row = conn.execute(select(models.users).where(models.users.c.username == username)).first()
    account = row.username if row is not None else None
    try:
        gw.throttle.check(account, address)
    except LoginRefused as exc:
        if exc.account_locked:
            _log_lock(gw, account or "")
        raise GatewayError(exc.status, exc.code, exc.detail) from None
    if not verify_password(row.password_hash if row else None, password) or row is None or row.disabled:
        if gw.throttle.failed(account, address).account_locked:
            _log_lock(gw, account or "")
        raise GatewayError(401, "login_failed", "利用者名またはパスワードが違います。")
    gw.throttle.succeeded(row.username)
    with gw.engine.begin() as conn:
        if needs_rehash(row.password_hash):
            conn.execute(update(models.users).where(models.users.c.id == row.id).values(password_hash=hash_password(password)))
        token = new_token()
        now = utcnow()
        expires = now + timedelta(minutes=gw.settings.session_minutes)
        conn.execute(delete(models.sessions).where(models.sessions.c.expires_at < now))
        conn.execute(insert(models.sessions).values(token_hash=token_digest(token), user_id=row.id, created_at=now, expires_at=expires))
    return token, User(row.id, row.username, row.role, bool(row.must_change_password)), expires


def _log_lock(gw: Gateway, account: str) -> None:
    # One entry per lock (an account stays locked until an administrator lifts it), so this cannot flood the log.
    gw.record("(throttle)", "-", "auth.lock", f"locked after {gw.throttle.rules.lock_after} failed sign-ins", target=account)


def logout(gw: Gateway, token: str) -> None:
    """End the session of ``token``."""
    with gw.engine.begin() as conn:
        conn.execute(delete(models.sessions).where(models.sessions.c.token_hash == token_digest(token)))


def user_for_token(gw: Gateway, token: str) -> User:
    """The user behind a live session token; 401 if the token is unknown or expired."""
    with gw.engine.connect() as conn:
        row = conn.execute(
            select(models.users.c.id, models.users.c.username, models.users.c.role, models.users.c.disabled,
                   models.users.c.must_change_password, models.sessions.c.expires_at)
            .join(models.sessions, models.sessions.c.user_id == models.users.c.id)
            .where(models.sessions.c.token_hash == token_digest(token))
        ).first()
    if row is None:
        raise GatewayError(401, "invalid_token", "認証トークンが無効です。ログインし直してください。")
    if row.expires_at <= utcnow():
        raise GatewayError(401, "token_expired", "認証トークンの有効期限が切れています。ログインし直してください。")
    if row.disabled:
        raise GatewayError(401, "user_disabled", "この利用者は無効になっています。")
    return User(row.id, row.username, row.role, bool(row.must_change_password))


def authorize(gw: Gateway, user: User, permission: str) -> None:
    """403 unless the policy lets ``user``'s role hold ``permission`` (and the user has no temporary password)."""
    if user.must_change_password:
        raise GatewayError(403, "password_change_required",
                           "仮パスワードでログインしています。先に自分のパスワードを設定してください（POST /api/v1/auth/password、画面では「パスワードの変更」）。")
    decision = gw.policy.may(user.role, permission)
    if not decision.allowed:
        raise GatewayError(403, "forbidden", decision.reason)


def list_users(gw: Gateway) -> list[dict]:
    """Every user (no password hashes), with whether a login lock holds them."""
    locked = {entry["key"]: entry for entry in gw.throttle.lockouts() if entry["kind"] == ACCOUNT}
    with gw.engine.connect() as conn:
        rows = conn.execute(select(models.users.c.username, models.users.c.role, models.users.c.disabled,
                                   models.users.c.must_change_password, models.users.c.created_at)
                            .order_by(models.users.c.username)).all()
    return [{**dict(r._mapping), "locked": bool(locked.get(r.username, {}).get("locked")),
             "wait_until": locked.get(r.username, {}).get("wait_until")} for r in rows]


def _target(conn: Connection, username: str):
    row = conn.execute(select(models.users).where(models.users.c.username == username)).first()
    if row is None:
        raise GatewayError(404, "unknown_user", f"利用者「{username}」はいません。")
    return row


def _admins_left(gw: Gateway, conn: Connection, without: str) -> int:
    """How many enabled users other than ``without`` could still manage accounts."""
    roles = [name for name in gw.policy.roles if gw.policy.may(name, MANAGE).allowed]
    u = models.users
    return conn.execute(select(func.count()).select_from(u).where(u.c.role.in_(roles), u.c.disabled.is_(False),
                                                                  u.c.username != without)).scalar_one()


def _keep_an_admin(gw: Gateway, conn: Connection, row, what: str) -> None:
    if gw.policy.may(row.role, MANAGE).allowed and not row.disabled and _admins_left(gw, conn, row.username) == 0:
        raise GatewayError(409, "last_admin", f"利用者を管理できる最後の利用者は{what}できません。先に別の管理者を作ってください。")


def set_disabled(gw: Gateway, actor: User | str, username: str, disabled: bool) -> None:
    """Disable (sessions end at once) or re-enable ``username``."""
    name, role = _who(actor)
    with gw.engine.begin() as conn:
        row = _target(conn, username)
        if disabled:
            if row.username == name:
                raise GatewayError(409, "self_disable", "自分自身は無効にできません。")
            _keep_an_admin(gw, conn, row, "無効に")
            conn.execute(delete(models.sessions).where(models.sessions.c.user_id == row.id))
        conn.execute(update(models.users).where(models.users.c.id == row.id).values(disabled=disabled))
        gw.record(name, role, "user.disable" if disabled else "user.enable", "ok", target=username, connection=conn)


def delete_user(gw: Gateway, actor: User | str, username: str) -> None:
    """Delete ``username`` and their sessions (their past actions stay in the audit log under the name)."""
    name, role = _who(actor)
    with gw.engine.begin() as conn:
        row = _target(conn, username)
        if row.username == name:
            raise GatewayError(409, "self_delete", "自分自身は削除できません。")
        _keep_an_admin(gw, conn, row, "削除")
        conn.execute(delete(models.sessions).where(models.sessions.c.user_id == row.id))
        conn.execute(delete(models.users).where(models.users.c.id == row.id))
        gw.record(name, role, "user.delete", "ok", target=username, connection=conn)
    gw.throttle.forget(username)


def set_role(gw: Gateway, actor: User | str, username: str, new_role: str) -> None:
    """Give ``username`` another role of the policy (takes effect at their next request)."""
    name, role = _who(actor)
    _check_role(gw, new_role)
    with gw.engine.begin() as conn:
        row = _target(conn, username)
        if not gw.policy.may(new_role, MANAGE).allowed:
            _keep_an_admin(gw, conn, row, "管理者以外のロールに変更")
        conn.execute(update(models.users).where(models.users.c.id == row.id).values(role=new_role))
        gw.record(name, role, "user.role", f"{row.role} -> {new_role}", target=username, connection=conn)


def reset_password(gw: Gateway, actor: User | str, username: str) -> str:
    """Give ``username`` a fresh temporary password (returned once, shown to the administrator only).

    Their sessions end, a login lock is lifted, and the next sign-in may only
    change the password until they choose their own.
    """
    name, role = _who(actor)
    temporary = temporary_password()
    with gw.engine.begin() as conn:
        row = _target(conn, username)
        conn.execute(delete(models.sessions).where(models.sessions.c.user_id == row.id))
        conn.execute(update(models.users).where(models.users.c.id == row.id)
                     .values(password_hash=hash_password(temporary), must_change_password=True))
        gw.record(name, role, "user.reset_password", "temporary password issued", target=username, connection=conn)
    gw.throttle.unlock(ACCOUNT, username)
    return temporary


def change_password(gw: Gateway, user: User, current: str, new: str, token: str | None = None) -> None:
    """``user`` changes their own password (proving the current one); their other sessions end."""
    with gw.engine.connect() as conn:
        row = _target(conn, user.username)
    if not verify_password(row.password_hash, current):
        raise GatewayError(422, "wrong_password", "現在のパスワードが違います。")
    if current == new:
        raise GatewayError(422, "same_password", "新しいパスワードは現在のものと違うものにしてください。")
    _check_password(user.username, new)
    with gw.engine.begin() as conn:
        conn.execute(update(models.users).where(models.users.c.id == row.id)
                     .values(password_hash=hash_password(new), must_change_password=False))
        others = delete(models.sessions).where(models.sessions.c.user_id == row.id)
        if token:
            others = others.where(models.sessions.c.token_hash != token_digest(token))
        conn.execute(others)
        gw.record(user.username, user.role, "user.change_password", "ok", target=user.username, connection=conn)


def unlock(gw: Gateway, actor: User | str, kind: str, key: str) -> bool:
    """Lift the login lock (and back-off) of an account or a client address; logged."""
    name, role = _who(actor)
    if kind not in (ACCOUNT, ADDRESS):
        raise GatewayError(422, "unknown_lock_kind", "種類は account（利用者）か address（接続元アドレス）です。")
    if not valid_lock_key(kind, key):
        raise GatewayError(422, "invalid_lock_key", "解除する対象は、利用者名か IP アドレス（例: 192.0.2.10）で指定してください。")
    if kind == ACCOUNT:
        with gw.engine.connect() as conn:
            _target(conn, key)
    lifted = gw.throttle.unlock(kind, key)
    gw.record(name, role, "auth.unlock", "lifted" if lifted else "nothing to lift", target=f"{kind}:{key}"[:200])
    return lifted


def temporary_password() -> str:
    """A random temporary password (192 bits in four groups, so it can be read out)."""
    return "-".join(secrets.token_urlsafe(6) for _ in range(4))


def _who(actor: User | str) -> tuple[str, str]:
    return (actor.username, actor.role) if isinstance(actor, User) else (actor, "admin")
