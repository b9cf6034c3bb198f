"""The escrow's own users, passwords and sessions: it takes nobody's word for who is asking (trust boundary 3).

The account lifecycle — create, sign in, disable, re-enable, delete, change
roles, reset the password (a temporary one to be changed at the next
sign-in), change one's own, lift a login lock — is the service base's
(:mod:`service.accounts`, shared with the gateway), here on the escrow's own
tables and audit log. Passwords are Argon2id through argon2-cffi
(:mod:`service.passwords`); hashes written by earlier versions with
``cryptography``'s Argon2id verify unchanged. A user may hold several roles
(a supervisor may be caseworker and approver), stored comma-separated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from escrow import db
from escrow.errors import EscrowError, UnknownRole
from service.frontdoor.throttle import LoginRefused, LoginThrottle
from service.accounts import Accounts
from service.errors import LoginFailed, Refusal, ThrottleRefused

if TYPE_CHECKING:
    from escrow.service import Escrow

ROLES = {
    "caseworker": "ケースワーカー（再識別の申請・開示の受け取り）",
    "approver": "承認者（再識別の承認・却下）",
    "custodian": "鍵管理者（開封・封印）",
    "auditor": "監査担当（申請一覧・監査ログの書き出し）",
    "admin": "管理者（利用者の管理・封印）",
}


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


def accounts(engine: Engine, escrow: Escrow | None = None, throttle: LoginThrottle | None = None) -> Accounts:
    """The escrow's users and sessions as the service base manages them (logged and throttled when ``escrow`` is given)."""
    return Accounts(engine, db.users, db.sessions, error=EscrowError, roles_column="roles",
                    is_admin=lambda roles: "admin" in roles.split(","), service_words=("tsunagu", "escrow"),
                    record=escrow.record if escrow is not None else None,
                    throttle=throttle or (escrow.throttle if escrow is not None else None))


def _stored(roles: list[str]) -> str:
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise UnknownRole(f"ロール「{'、'.join(unknown)}」はありません（使えるもの: {', '.join(ROLES)}）。")
    return ",".join(sorted(set(roles)))


def _user(row) -> User:
    return User(row.username, frozenset(row.roles.split(",")), bool(row.must_change_password))


def add_user(engine: Engine, username: str, roles: list[str], password: str, escrow: Escrow | None = None,
             actor: str = "cli") -> User:
    """Create a user holding ``roles``; the password is kept as an Argon2id hash only (logged when ``escrow`` is given)."""
    stored = _stored(roles)
    accounts(engine, escrow).create(username, stored, password, actor)
    return User(username, frozenset(roles))


def login(engine: Engine, username: str, password: str, session_minutes: float, throttle: LoginThrottle | None = None,
          address: str | None = None) -> tuple[str, User, datetime]:
    """Check the password and open a session: the bearer token (shown once), the user and the expiry.

    With ``throttle``, a locked account or an address told to wait is refused
    before the password is checked; a lock is raised as :class:`AccountLocked`
    for the caller to log.
    """
    token, row, expires = accounts(engine, throttle=throttle).login(username, password, session_minutes, address, AccountLocked)
    return token, _user(row), expires


def sign_in(escrow: Escrow, username: str, password: str, address: str | None, outcome: str = "signed in") -> tuple[str, User, datetime]:
    """Sign in as the API and the UI both do: throttled per account and ``address``, the session logged as ``outcome``.

    A lock is rare and bounded (one per account until an administrator lifts
    it), so it is signed into the audit log; any other refusal of a sign-in is
    counted and summarised (:meth:`escrow.service.Escrow.refuse_anonymous`),
    never one signed entry per attempt, and the name typed is not logged (it
    may be a mistyped password).
    """
    try:
        token, user, expires = login(escrow.engine, username, password, escrow.settings.session_minutes,
                                     throttle=escrow.throttle, address=address)
    except AccountLocked as exc:
        escrow.record("(throttle)", "-", "auth.lock", f"locked after {escrow.throttle.rules.lock_after} failed sign-ins", target=exc.username)
        raise escrow.refuse_anonymous("auth.login", exc) from None
    except EscrowError as exc:
        raise escrow.refuse_anonymous("auth.login", exc) from None
    escrow.record(user.username, user.label, "auth.login", outcome)
    return token, user, expires


class AccountLocked(EscrowError):
    """This failed sign-in locked ``username`` (the caller logs the lock in the audit log)."""

    def __init__(self, username: str, refused: LoginRefused | None = None) -> None:
        """Answered as the attempt itself was: a failed password (401), or the throttle's refusal."""
        shown: Refusal = LoginFailed("利用者名またはパスワードが違います。") if refused is None else ThrottleRefused(refused)
        super().__init__(shown.detail)
        self.status, self.code = shown.status, shown.code  # type: ignore[misc]
        self.username = username


def logout(engine: Engine, token: str) -> None:
    """End the session of ``token``."""
    accounts(engine).logout(token)


def user_for_token(engine: Engine, token: str) -> User:
    """The user of a live session; 401 if the token is unknown or has expired, or the user is disabled."""
    return _user(accounts(engine).session_user(token))


def list_users(escrow: Escrow) -> list[dict]:
    """Every user with roles and state (no password hashes)."""
    return [{**row, "roles": row["roles"].split(","), "created_at": db.iso(row["created_at"])}
            for row in accounts(escrow.engine, escrow).list()]


def set_disabled(escrow: Escrow, actor: User | str, username: str, disabled: bool) -> None:
    """Disable (sessions end at once) or re-enable ``username``."""
    accounts(escrow.engine, escrow).set_disabled(*_who(actor), username, disabled)


def delete_user(escrow: Escrow, actor: User | str, username: str) -> None:
    """Delete ``username`` and their sessions; requests and decisions they made stay, under their name."""
    accounts(escrow.engine, escrow).delete(*_who(actor), username)


def set_roles(escrow: Escrow, actor: User | str, username: str, roles: list[str]) -> None:
    """Give ``username`` another set of roles (effective at their next request)."""
    accounts(escrow.engine, escrow).set_roles(*_who(actor), username, _stored(roles))


def reset_password(escrow: Escrow, actor: User | str, username: str) -> str:
    """A fresh temporary password for ``username`` (returned once); sessions end, a lock is lifted, it must be changed."""
    return accounts(escrow.engine, escrow).reset_password(*_who(actor), username)


def change_password(escrow: Escrow, user: User, current: str, new: str, token: str | None = None) -> None:
    """``user`` changes their own password (proving the current one); their other sessions end."""
    accounts(escrow.engine, escrow).change_password(user.username, user.label, current, new, token)


def unlock(escrow: Escrow, actor: User | str, kind: str, key: str) -> bool:
    """Lift the login lock (and back-off) of an account or a client address; logged."""
    return accounts(escrow.engine, escrow).unlock(*_who(actor), kind, key)


def _who(actor: User | str) -> tuple[str, str]:
    return (actor.username, actor.label) if isinstance(actor, User) else (actor, "admin")
