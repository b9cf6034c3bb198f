"""The account lifecycle both services share: create, sign in, sessions, disable, delete, roles, passwords, locks.

Each service keeps its own ``users`` and ``sessions`` tables and its own
audit log (the escrow takes nobody's word for who is asking). The tables have
one definition, :func:`account_tables`, which each service calls on its own
metadata with the one column that must differ: the roles. What else differs
between the services is data handed to :class:`Accounts`: the tables, the column
holding the roles (the gateway's one policy role, the escrow's set of roles
written comma-separated), which stored roles make an administrator, the
service's refusal class and how it writes an audit entry. Every change
commits in one transaction with its audit entry.

Passwords are Argon2id hashes (:mod:`service.passwords`); the database keeps
only the SHA-256 of a session token. The password rule and the login
throttle are :mod:`service.frontdoor`'s.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Protocol

from sqlalchemy import (Boolean, Column, DateTime, ForeignKey, Integer, LargeBinary, MetaData, String, Table, delete, false,
                        func, insert, select, text, update)
from sqlalchemy.engine import Connection, Engine, Row

from service.frontdoor.passwords import WeakPassword, check_password
from service.frontdoor.throttle import ACCOUNT, ADDRESS, LoginRefused, LoginThrottle, valid_lock_key
from service.db import utcnow
from service.errors import (InvalidLockKey, InvalidToken, InvalidUsername, LastAdmin, LoginFailed, PasswordTooWeak, Refusal,
                            SamePassword, SelfDelete, SelfDisable, ThrottleRefused, TokenExpired, UnknownLockKind,
                            UnknownUser, UserDisabled, UserExists, WrongPassword, of_service)
from service.passwords import hash_password, needs_rehash, new_token, token_digest, verify_password

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_FAILED = "利用者名またはパスワードが違います。"


def account_tables(metadata: MetaData, roles: Column) -> tuple[Table, Table]:
    """The ``users`` and ``sessions`` tables of one service, on its ``metadata``; ``roles`` is its column holding the roles.

    The gateway stores one policy role (``role``), the escrow a comma-separated
    set (``roles``); every other column is the same at both.
    """
    users = Table(
        "users",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("username", String(64), nullable=False, unique=True),
        roles,
        Column("password_hash", String(256), nullable=False),  # an Argon2id PHC string (about 100 characters)
        #: a disabled user cannot sign in, and their sessions end
        Column("disabled", Boolean, nullable=False, default=False, server_default=false()),
        Column("created_at", DateTime, nullable=False),
        #: set by an administrator's reset: the temporary password only lets the user choose their own
        Column("must_change_password", Boolean, nullable=False, default=False, server_default=false()),
    )
    sessions = Table(
        "sessions",
        metadata,
        # SHA-256 of the bearer token: a stolen database does not yield live tokens.
        Column("token_hash", LargeBinary(32), primary_key=True),
        Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        Column("created_at", DateTime, nullable=False),
        Column("expires_at", DateTime, nullable=False, index=True),
    )
    return users, sessions


def rebuild_account_tables(bind: Connection, users: Table, sessions: Table) -> None:
    """A migration step: remake ``users`` and ``sessions`` as :func:`account_tables` defines them, every row kept.

    For columns SQLite cannot alter in place (a length, a default, a foreign
    key's ``ON DELETE``). The rows are few (staff accounts and their open
    sessions): they are read, both tables dropped (the child first, so no
    foreign key fires) and made anew, and the rows written back; on
    PostgreSQL the id sequence then continues after the largest id.
    """
    user_rows = [dict(r._mapping) for r in bind.execute(select(*users.columns))]
    session_rows = [dict(r._mapping) for r in bind.execute(select(*sessions.columns))]
    # DML first: SQLite's driver opens the transaction at the first DML statement only, so
    # the drops and creates below commit or roll back together with the rows.
    bind.execute(delete(sessions))
    bind.execute(delete(users))
    sessions.drop(bind)
    users.drop(bind)
    users.create(bind)
    sessions.create(bind)
    if user_rows:
        bind.execute(insert(users), user_rows)
    if session_rows:
        bind.execute(insert(sessions), session_rows)
    if bind.dialect.name == "postgresql":
        bind.execute(text("SELECT setval(pg_get_serial_sequence('users', 'id'), :next, false)"),
                     {"next": (bind.execute(select(func.max(users.c.id))).scalar() or 0) + 1})


class Recorder(Protocol):
    """How a service appends to its audit log (``connection``: inside the change's transaction)."""

    def __call__(self, actor: str, role: str, action: str, outcome: str, *, target: str = "",
                 connection: Connection | None = None) -> None: ...


@dataclass(frozen=True)
class Accounts:
    """The users and sessions of one service, and every change to them."""

    engine: Engine
    users: Table
    sessions: Table
    #: the service's refusal base (``GatewayError``, ``EscrowError``): every refusal here is one of
    #: :mod:`service.errors`' account refusals, made a subclass of it too (:func:`service.errors.of_service`)
    error: type[Refusal]
    #: the ``users`` column holding the roles, as stored
    roles_column: str
    #: True if a user with these stored roles may manage accounts (one must always remain)
    is_admin: Callable[[str], bool]
    #: the words the password rule also refuses (the service's own name)
    service_words: tuple[str, ...]
    #: the audit log; None only while a service is being created, before it has a log
    record: Recorder | None = None
    throttle: LoginThrottle | None = None

    def _refusal(self, refusal: type[Refusal]) -> type[Refusal]:
        return of_service(refusal, self.error)

    def _roles(self, row: Row) -> str:
        return getattr(row, self.roles_column)

    def _log(self, *args: Any, **kwargs: Any) -> None:
        if self.record is not None:
            self.record(*args, **kwargs)

    def check_new_password(self, username: str, password: str) -> None:
        """422 unless ``password`` passes the password rule for ``username``."""
        try:
            check_password(password, username, self.service_words)
        except WeakPassword as exc:
            raise self._refusal(PasswordTooWeak)(str(exc)) from None

    def create(self, username: str, roles: str, password: str, actor: str) -> int:
        """Create ``username`` holding ``roles`` (already checked by the service); returns the new user's id."""
        if not _USERNAME.match(username):
            raise self._refusal(InvalidUsername)("利用者名は英数字と . _ @ - で 64 文字以内にしてください。")
        self.check_new_password(username, password)
        with self.engine.begin() as conn:
            if conn.execute(select(self.users.c.id).where(self.users.c.username == username)).first():
                raise self._refusal(UserExists)(f"利用者「{username}」はすでにいます。")
            user_id = conn.execute(insert(self.users).values(
                username=username, password_hash=hash_password(password), created_at=utcnow(), disabled=False,
                must_change_password=False, **{self.roles_column: roles})).inserted_primary_key[0]
            self._log(actor, "admin", "user.add", "ok", target=f"{username}:{roles}", connection=conn)
        return user_id

    def login(self, username: str, password: str, session_minutes: float, address: str | None,
              locked: Callable[[str, LoginRefused | None], Refusal]) -> tuple[str, Row, datetime]:
        """Check the password and open a session: the bearer token (shown once), the user's row and the expiry.

        The throttle is asked first (per account and per client ``address``):
        a locked account or an address told to wait is refused without the
        password being checked. When an account is (or becomes) locked,
        ``locked(username, refusal)`` gives the exception to raise (the service
        logs the lock there); ``refusal`` is None for the attempt that locked it.
        """
        with self.engine.connect() as conn:
            row = conn.execute(select(self.users).where(self.users.c.username == username)).first()
        account = row.username if row is not None else None
        if self.throttle is not None:
            try:
                self.throttle.check(account, address)
            except LoginRefused as exc:
                if exc.account_locked:
                    raise locked(account or "", exc) from None
                raise self.throttled(exc) from None
        if not verify_password(row.password_hash if row else None, password) or row is None or row.disabled:
            if self.throttle is not None and self.throttle.failed(account, address).account_locked:
                raise locked(account or "", None)
            raise self._refusal(LoginFailed)(_FAILED)
        if self.throttle is not None:
            self.throttle.succeeded(row.username)
        token = new_token()
        now = utcnow()
        expires = now + timedelta(minutes=session_minutes)
        with self.engine.begin() as conn:
            if needs_rehash(row.password_hash):  # hashed with older parameters: upgraded now that the password is known
                conn.execute(update(self.users).where(self.users.c.id == row.id).values(password_hash=hash_password(password)))
            conn.execute(delete(self.sessions).where(self.sessions.c.expires_at < now))
            conn.execute(insert(self.sessions).values(token_hash=token_digest(token), user_id=row.id, created_at=now,
                                                      expires_at=expires))
        return token, row, expires

    def throttled(self, refused: LoginRefused) -> Refusal:
        """The throttle's refusal of a sign-in (429 wait, 403 locked), as this service's ``ThrottleRefused``."""
        return self._refusal(ThrottleRefused)(refused)

    def failed_login(self) -> Refusal:
        """The refusal of a wrong password (also the answer to the attempt that locks an account)."""
        return self._refusal(LoginFailed)(_FAILED)

    def logout(self, token: str) -> None:
        """End the session of ``token``."""
        with self.engine.begin() as conn:
            conn.execute(delete(self.sessions).where(self.sessions.c.token_hash == token_digest(token)))

    def session_user(self, token: str) -> Row:
        """The user row behind a live session; 401 if the token is unknown or expired, or the user is disabled."""
        u = self.users
        with self.engine.connect() as conn:
            row = conn.execute(
                select(u.c.id, u.c.username, u.c[self.roles_column], u.c.disabled, u.c.must_change_password,
                       self.sessions.c.expires_at)
                .join(self.sessions, self.sessions.c.user_id == u.c.id)
                .where(self.sessions.c.token_hash == token_digest(token))
            ).first()
        if row is None:
            raise self._refusal(InvalidToken)("認証トークンが無効です。ログインし直してください。")
        if row.expires_at <= utcnow():
            raise self._refusal(TokenExpired)("認証トークンの有効期限が切れています。ログインし直してください。")
        if row.disabled:
            raise self._refusal(UserDisabled)("この利用者は無効になっています。")
        return row

    def list(self) -> list[dict]:
        """Every user (no password hashes), with whether a login lock holds them; roles as stored."""
        locks = {e["key"]: e for e in self.throttle.lockouts() if e["kind"] == ACCOUNT} if self.throttle else {}
        u = self.users
        with self.engine.connect() as conn:
            rows = conn.execute(select(u.c.username, u.c[self.roles_column], u.c.disabled, u.c.must_change_password,
                                       u.c.created_at).order_by(u.c.username)).all()
        return [{**dict(r._mapping), "locked": bool(locks.get(r.username, {}).get("locked")),
                 "wait_until": locks.get(r.username, {}).get("wait_until")} for r in rows]

    def _target(self, conn: Connection, username: str) -> Row:
        row = conn.execute(select(self.users).where(self.users.c.username == username)).first()
        if row is None:
            raise self._refusal(UnknownUser)(f"利用者「{username}」はいません。")
        return row

    def _keep_an_admin(self, conn: Connection, row: Row, what: str) -> None:
        if not self.is_admin(self._roles(row)) or row.disabled:
            return
        others = conn.execute(select(self.users.c[self.roles_column])
                              .where(self.users.c.username != row.username, self.users.c.disabled.is_(False))).scalars()
        if not any(self.is_admin(roles) for roles in others):
            raise self._refusal(LastAdmin)(f"利用者を管理できる最後の利用者は{what}できません。先に別の管理者を作ってください。")

    def set_disabled(self, actor: str, actor_role: str, username: str, disabled: bool) -> None:
        """Disable (sessions end at once) or re-enable ``username``."""
        with self.engine.begin() as conn:
            row = self._target(conn, username)
            if disabled:
                if row.username == actor:
                    raise self._refusal(SelfDisable)("自分自身は無効にできません。")
                self._keep_an_admin(conn, row, "無効に")
                conn.execute(delete(self.sessions).where(self.sessions.c.user_id == row.id))
            conn.execute(update(self.users).where(self.users.c.id == row.id).values(disabled=disabled))
            self._log(actor, actor_role, "user.disable" if disabled else "user.enable", "ok", target=username, connection=conn)

    def delete(self, actor: str, actor_role: str, username: str) -> None:
        """Delete ``username`` and their sessions; what they did stays in the audit log under their name."""
        with self.engine.begin() as conn:
            row = self._target(conn, username)
            if row.username == actor:
                raise self._refusal(SelfDelete)("自分自身は削除できません。")
            self._keep_an_admin(conn, row, "削除")
            conn.execute(delete(self.sessions).where(self.sessions.c.user_id == row.id))
            conn.execute(delete(self.users).where(self.users.c.id == row.id))
            self._log(actor, actor_role, "user.delete", "ok", target=username, connection=conn)
        if self.throttle is not None:
            self.throttle.forget(username)

    def set_roles(self, actor: str, actor_role: str, username: str, roles: str) -> None:
        """Give ``username`` other roles (already checked by the service; effective at their next request)."""
        with self.engine.begin() as conn:
            row = self._target(conn, username)
            if not self.is_admin(roles):
                self._keep_an_admin(conn, row, "管理者以外のロールに変更")
            conn.execute(update(self.users).where(self.users.c.id == row.id).values(**{self.roles_column: roles}))
            self._log(actor, actor_role, "user.role", f"{self._roles(row)} -> {roles}", target=username, connection=conn)

    def reset_password(self, actor: str, actor_role: str, username: str) -> str:
        """A fresh temporary password for ``username`` (returned once); sessions end, a lock is lifted, it must be changed."""
        temporary = temporary_password()
        with self.engine.begin() as conn:
            row = self._target(conn, username)
            conn.execute(delete(self.sessions).where(self.sessions.c.user_id == row.id))
            conn.execute(update(self.users).where(self.users.c.id == row.id)
                         .values(password_hash=hash_password(temporary), must_change_password=True))
            self._log(actor, actor_role, "user.reset_password", "temporary password issued", target=username, connection=conn)
        if self.throttle is not None:
            self.throttle.unlock(ACCOUNT, username)
        return temporary

    def change_password(self, username: str, role: str, current: str, new: str, token: str | None = None) -> None:
        """``username`` changes their own password (proving the current one); their other sessions end."""
        with self.engine.connect() as conn:
            row = self._target(conn, username)
        if not verify_password(row.password_hash, current):
            raise self._refusal(WrongPassword)("現在のパスワードが違います。")
        if current == new:
            raise self._refusal(SamePassword)("新しいパスワードは現在のものと違うものにしてください。")
        self.check_new_password(username, new)
        with self.engine.begin() as conn:
            conn.execute(update(self.users).where(self.users.c.id == row.id)
                         .values(password_hash=hash_password(new), must_change_password=False))
            others = delete(self.sessions).where(self.sessions.c.user_id == row.id)
            if token:
                others = others.where(self.sessions.c.token_hash != token_digest(token))
            conn.execute(others)
            self._log(username, role, "user.change_password", "ok", target=username, connection=conn)

    def unlock(self, actor: str, actor_role: str, kind: str, key: str) -> bool:
        """Lift the login lock (and back-off) of an account or a client address; logged."""
        if kind not in (ACCOUNT, ADDRESS):
            raise self._refusal(UnknownLockKind)("種類は account（利用者）か address（接続元アドレス）です。")
        if not valid_lock_key(kind, key):
            raise self._refusal(InvalidLockKey)("解除する対象は、利用者名か IP アドレス（例: 192.0.2.10）で指定してください。")
        if kind == ACCOUNT:
            with self.engine.connect() as conn:
                self._target(conn, key)
        lifted = self.throttle.unlock(kind, key) if self.throttle is not None else False
        self._log(actor, actor_role, "auth.unlock", "lifted" if lifted else "nothing to lift", target=f"{kind}:{key}"[:100])
        return lifted


def temporary_password() -> str:
    """A random temporary password (192 bits in four groups, so it can be read out)."""
    return "-".join(secrets.token_urlsafe(6) for _ in range(4))
