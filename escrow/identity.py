"""The escrow's own users, passwords and sessions: it takes nobody's word for who is asking (trust boundary 3).

Passwords are Argon2id PHC strings from ``cryptography`` (RFC 9106 second
recommended option: m = 64 MiB, t = 3, p = 4; the parameters and salt travel
in the string). Session tokens are 256-bit random strings; the database keeps
only their SHA-256, and they expire ``session_minutes`` after sign-in.

The password rule and the login throttle are the gateway's too
(:mod:`keys.frontdoor`). The account lifecycle — create, disable, re-enable,
delete, change roles, reset the password (a temporary one to be changed at
the next sign-in), change one's own, lift a login lock — commits each change
with its entry in the escrow's audit log.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, Engine

from escrow import db
from escrow.errors import EscrowError
from keys.frontdoor.passwords import MIN_LENGTH, WeakPassword, check_password
from keys.frontdoor.throttle import ACCOUNT, ADDRESS, LoginRefused, LoginThrottle, valid_lock_key

if TYPE_CHECKING:
    from escrow.service import Escrow

ROLES = {
    "caseworker": "ケースワーカー（再識別の申請・開示の受け取り）",
    "approver": "承認者（再識別の承認・却下）",
    "custodian": "鍵管理者（開封・封印）",
    "auditor": "監査担当（申請一覧・監査ログの書き出し）",
    "admin": "管理者（利用者の管理・封印）",
}
MIN_PASSWORD = MIN_LENGTH
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True)
class User:
    """A signed-in user of the escrow and the roles they hold (a supervisor may be caseworker and approver)."""

    username: str
    roles: frozenset[str]
    must_change_password: bool = False

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
        Argon2id.verify_phc_encoded(password.encode("utf-8", "surrogatepass"), phc or _DUMMY_HASH)
    except InvalidKey:
        return False
    return phc is not None


def _check_password(username: str, password: str) -> None:
    try:
        check_password(password, username, ("tsunagu", "escrow"))
    except WeakPassword as exc:
        raise EscrowError(422, "weak_password", str(exc)) from None


def _check_roles(roles: list[str]) -> None:
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise EscrowError(422, "unknown_role", f"ロール「{'、'.join(unknown)}」はありません（使えるもの: {', '.join(ROLES)}）。")


def add_user(engine: Engine, username: str, roles: list[str], password: str, escrow: Escrow | None = None,
             actor: str = "cli") -> User:
    """Create a user holding ``roles``; the password is kept as an Argon2id hash only (logged when ``escrow`` is given)."""
    if not _USERNAME.match(username):
        raise EscrowError(422, "invalid_username", "利用者名は英数字と . _ @ - で 64 文字以内にしてください。")
    _check_roles(roles)
    _check_password(username, password)
    with engine.begin() as conn:
        if conn.execute(select(db.users.c.id).where(db.users.c.username == username)).first():
            raise EscrowError(409, "user_exists", f"利用者「{username}」は既にいます。")
        conn.execute(insert(db.users).values(username=username, roles=",".join(sorted(set(roles))),
                                             password_hash=hash_password(password), created_at=db.utcnow(),
                                             disabled=False, must_change_password=False))
        user = User(username, frozenset(roles))
        if escrow is not None:
            escrow.record(actor, "admin", "user.add", "created", target=f"{username}:{user.label}", connection=conn)
    return user


def login(engine: Engine, username: str, password: str, session_minutes: float, throttle: LoginThrottle | None = None,
          address: str | None = None) -> tuple[str, User, datetime]:
    """Check the password and open a session: the bearer token (shown once), the user and the expiry.

    With ``throttle``, a locked account or an address told to wait is refused
    (:class:`keys.frontdoor.throttle.LoginRefused`) before the password is checked.
    """
    with engine.connect() as conn:
        row = conn.execute(select(db.users).where(db.users.c.username == username)).first()
    account = row.username if row is not None else None
    if throttle is not None:
        try:
            throttle.check(account, address)
        except LoginRefused as exc:
            if exc.account_locked:
                raise AccountLocked(account or "", exc) from None
            raise
    if not _password_matches(row.password_hash if row else None, password) or row is None or row.disabled:
        if throttle is not None:
            outcome = throttle.failed(account, address)
            if outcome.account_locked:
                raise AccountLocked(account or "")
        raise EscrowError(401, "login_failed", "利用者名またはパスワードが違います。")
    if throttle is not None:
        throttle.succeeded(row.username)
    token = secrets.token_urlsafe(32)
    now = db.utcnow()
    expires = now + timedelta(minutes=session_minutes)
    with engine.begin() as conn:
        conn.execute(delete(db.sessions).where(db.sessions.c.expires_at < now))
        conn.execute(insert(db.sessions).values(token_hash=_digest(token), user_id=row.id, created_at=now, expires_at=expires))
    return token, User(row.username, frozenset(row.roles.split(",")), bool(row.must_change_password)), expires


class AccountLocked(EscrowError):
    """This failed sign-in locked ``username`` (the caller logs the lock in the audit log)."""

    def __init__(self, username: str, refused: LoginRefused | None = None) -> None:
        """Answered as the attempt itself was: a failed password (401), or the throttle's refusal."""
        if refused is None:
            super().__init__(401, "login_failed", "利用者名またはパスワードが違います。")
        else:
            super().__init__(refused.status, refused.code, refused.detail)
        self.username = username


def logout(engine: Engine, token: str) -> None:
    """End the session of ``token``."""
    with engine.begin() as conn:
        conn.execute(delete(db.sessions).where(db.sessions.c.token_hash == _digest(token)))


def user_for_token(engine: Engine, token: str) -> User:
    """The user of a live session; 401 if the token is unknown or has expired, or the user is disabled."""
    with engine.connect() as conn:
        row = conn.execute(
            select(db.users.c.username, db.users.c.roles, db.users.c.disabled, db.users.c.must_change_password, db.sessions.c.expires_at)
            .join(db.sessions, db.sessions.c.user_id == db.users.c.id)
            .where(db.sessions.c.token_hash == _digest(token))
        ).first()
    if row is None:
        raise EscrowError(401, "invalid_token", "認証トークンが無効です。ログインし直してください。")
    if row.expires_at <= db.utcnow():
        raise EscrowError(401, "token_expired", "認証トークンの有効期限が切れています。ログインし直してください。")
    if row.disabled:
        raise EscrowError(401, "user_disabled", "この利用者は無効になっています。")
    return User(row.username, frozenset(row.roles.split(",")), bool(row.must_change_password))


def list_users(escrow: Escrow) -> list[dict]:
    """Every user with roles and state (no password hashes)."""
    locks = {e["key"]: e for e in escrow.throttle.lockouts() if e["kind"] == ACCOUNT}
    with escrow.engine.connect() as conn:
        rows = conn.execute(select(db.users.c.username, db.users.c.roles, db.users.c.disabled, db.users.c.must_change_password,
                                   db.users.c.created_at).order_by(db.users.c.username)).all()
    return [{"username": r.username, "roles": r.roles.split(","), "disabled": bool(r.disabled),
             "must_change_password": bool(r.must_change_password), "created_at": db.iso(r.created_at),
             "locked": bool(locks.get(r.username, {}).get("locked")), "wait_until": locks.get(r.username, {}).get("wait_until")}
            for r in rows]


def _target(conn: Connection, username: str):
    row = conn.execute(select(db.users).where(db.users.c.username == username)).first()
    if row is None:
        raise EscrowError(404, "unknown_user", f"利用者「{username}」はいません。")
    return row


def _keep_an_admin(conn: Connection, row, what: str) -> None:
    if "admin" not in row.roles.split(",") or row.disabled:
        return
    others = conn.execute(select(db.users.c.roles).where(db.users.c.username != row.username, db.users.c.disabled.is_(False))).scalars()
    if not any("admin" in roles.split(",") for roles in others):
        raise EscrowError(409, "last_admin", f"最後の管理者は{what}できません。先に別の管理者を作ってください。")


def set_disabled(escrow: Escrow, actor: User | str, username: str, disabled: bool) -> None:
    """Disable (sessions end at once) or re-enable ``username``."""
    name, role = _who(actor)
    with escrow.engine.begin() as conn:
        row = _target(conn, username)
        if disabled:
            if row.username == name:
                raise EscrowError(409, "self_disable", "自分自身は無効にできません。")
            _keep_an_admin(conn, row, "無効に")
            conn.execute(delete(db.sessions).where(db.sessions.c.user_id == row.id))
        conn.execute(update(db.users).where(db.users.c.id == row.id).values(disabled=disabled))
        escrow.record(name, role, "user.disable" if disabled else "user.enable", "ok", target=username, connection=conn)


def delete_user(escrow: Escrow, actor: User | str, username: str) -> None:
    """Delete ``username`` and their sessions; requests and decisions they made stay, under their name."""
    name, role = _who(actor)
    with escrow.engine.begin() as conn:
        row = _target(conn, username)
        if row.username == name:
            raise EscrowError(409, "self_delete", "自分自身は削除できません。")
        _keep_an_admin(conn, row, "削除")
        conn.execute(delete(db.sessions).where(db.sessions.c.user_id == row.id))
        conn.execute(delete(db.users).where(db.users.c.id == row.id))
        escrow.record(name, role, "user.delete", "ok", target=username, connection=conn)
    escrow.throttle.forget(username)


def set_roles(escrow: Escrow, actor: User | str, username: str, roles: list[str]) -> None:
    """Give ``username`` another set of roles (effective at their next request)."""
    name, role = _who(actor)
    _check_roles(roles)
    new = ",".join(sorted(set(roles)))
    with escrow.engine.begin() as conn:
        row = _target(conn, username)
        if "admin" not in roles:
            _keep_an_admin(conn, row, "管理者以外のロールに変更")
        conn.execute(update(db.users).where(db.users.c.id == row.id).values(roles=new))
        escrow.record(name, role, "user.role", f"{row.roles} -> {new}", target=username, connection=conn)


def reset_password(escrow: Escrow, actor: User | str, username: str) -> str:
    """A fresh temporary password for ``username`` (returned once); sessions end, a lock is lifted, it must be changed."""
    name, role = _who(actor)
    temporary = "-".join(secrets.token_urlsafe(6) for _ in range(4))
    with escrow.engine.begin() as conn:
        row = _target(conn, username)
        conn.execute(delete(db.sessions).where(db.sessions.c.user_id == row.id))
        conn.execute(update(db.users).where(db.users.c.id == row.id)
                     .values(password_hash=hash_password(temporary), must_change_password=True))
        escrow.record(name, role, "user.reset_password", "temporary password issued", target=username, connection=conn)
    escrow.throttle.unlock(ACCOUNT, username)
    return temporary


def change_password(escrow: Escrow, user: User, current: str, new: str, token: str | None = None) -> None:
    """``user`` changes their own password (proving the current one); their other sessions end."""
    with escrow.engine.connect() as conn:
        row = _target(conn, user.username)
    if not _password_matches(row.password_hash, current):
        raise EscrowError(422, "wrong_password", "現在のパスワードが違います。")
    if current == new:
        raise EscrowError(422, "same_password", "新しいパスワードは現在のものと違うものにしてください。")
    _check_password(user.username, new)
    with escrow.engine.begin() as conn:
        conn.execute(update(db.users).where(db.users.c.id == row.id).values(password_hash=hash_password(new), must_change_password=False))
        others = delete(db.sessions).where(db.sessions.c.user_id == row.id)
        if token:
            others = others.where(db.sessions.c.token_hash != _digest(token))
        conn.execute(others)
        escrow.record(user.username, user.label, "user.change_password", "ok", target=user.username, connection=conn)


def unlock(escrow: Escrow, actor: User | str, kind: str, key: str) -> bool:
    """Lift the login lock (and back-off) of an account or a client address; logged."""
    name, role = _who(actor)
    if kind not in (ACCOUNT, ADDRESS):
        raise EscrowError(422, "unknown_lock_kind", "種類は account（利用者）か address（接続元アドレス）です。")
    if not valid_lock_key(kind, key):
        raise EscrowError(422, "invalid_lock_key", "解除する対象は、利用者名か IP アドレス（例: 192.0.2.10）で指定してください。")
    if kind == ACCOUNT:
        with escrow.engine.connect() as conn:
            _target(conn, key)
    lifted = escrow.throttle.unlock(kind, key)
    escrow.record(name, role, "auth.unlock", "lifted" if lifted else "nothing to lift", target=f"{kind}:{key}"[:100])
    return lifted


def _who(actor: User | str) -> tuple[str, str]:
    return (actor.username, actor.label) if isinstance(actor, User) else (actor, "admin")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()

