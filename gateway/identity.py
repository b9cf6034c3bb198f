"""Users, roles and sessions: who is calling, and may their role do this (asked of the policy).

The account lifecycle (create, disable, re-enable, delete, change role,
reset the password to a temporary one the user must change at the next
sign-in, change one's own, lift a login lock) is the service base's
(:mod:`service.accounts`), shared with the escrow; this module gives it the
gateway's tables, its one policy role per user and its audit log. Each
change commits with its audit entry in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway import models
from gateway.core import Gateway
from gateway.errors import Forbidden, GatewayError, PasswordChangeRequired, UnknownRole
from service.frontdoor.throttle import LoginRefused
from service.accounts import Accounts

#: the permission that makes a user an administrator of accounts
MANAGE = "users.manage"


@dataclass(frozen=True, slots=True)
class User:
    """An authenticated user; ``must_change_password`` after a reset, until they choose their own."""

    id: int
    username: str
    role: str
    must_change_password: bool = False


def accounts(gw: Gateway) -> Accounts:
    """The gateway's users and sessions as the service base manages them."""
    return Accounts(gw.engine, models.users, models.sessions, error=GatewayError, roles_column="role",
                    is_admin=lambda role: gw.policy.may(role, MANAGE).allowed, service_words=("tsunagu", "gateway"),
                    record=gw.record, throttle=gw.throttle)


def _check_role(gw: Gateway, role: str) -> None:
    if role not in gw.policy.roles:
        raise UnknownRole(f"ロール「{role}」はポリシーにありません（使えるもの: {', '.join(gw.policy.roles)}）。")


def add_user(gw: Gateway, username: str, role: str, password: str, actor: str = "cli") -> User:
    """Create a user with ``role`` (a role of the policy); the password is stored as an Argon2id hash only."""
    _check_role(gw, role)
    return User(accounts(gw).create(username, role, password, actor), username, role)


def login(gw: Gateway, username: str, password: str, address: str | None = None) -> tuple[str, User, datetime]:
    """Check the password and open a session; returns the bearer token (shown once), the user and the expiry.

    The throttle is asked first (per account and per client ``address``): a
    locked account or an address told to wait is refused without the
    password being checked, so even the right password does not sign in.
    """
    book = accounts(gw)

    def locked(account: str, refused: LoginRefused | None) -> GatewayError:
        # One entry per lock (an account stays locked until an administrator lifts it), so this cannot flood the log.
        gw.record("(throttle)", "-", "auth.lock", f"locked after {gw.throttle.rules.lock_after} failed sign-ins", target=account)
        return book.failed_login() if refused is None else book.throttled(refused)

    token, row, expires = book.login(username, password, gw.settings.session_minutes, address, locked)
    return token, User(row.id, row.username, row.role, bool(row.must_change_password)), expires


def logout(gw: Gateway, token: str) -> None:
    """End the session of ``token``."""
    accounts(gw).logout(token)


def user_for_token(gw: Gateway, token: str) -> User:
    """The user behind a live session token; 401 if the token is unknown or expired."""
    row = accounts(gw).session_user(token)
    return User(row.id, row.username, row.role, bool(row.must_change_password))


def authorize(gw: Gateway, user: User, permission: str) -> None:
    """403 unless the policy lets ``user``'s role hold ``permission`` (and the user has no temporary password)."""
    if user.must_change_password:
        raise PasswordChangeRequired("仮パスワードでログインしています。先に自分のパスワードを設定してください（POST /api/v1/auth/password、画面では「パスワードの変更」）。")
    decision = gw.policy.may(user.role, permission)
    if not decision.allowed:
        raise Forbidden(decision.reason)


def list_users(gw: Gateway) -> list[dict]:
    """Every user (no password hashes), with whether a login lock holds them."""
    return accounts(gw).list()


def set_disabled(gw: Gateway, actor: User | str, username: str, disabled: bool) -> None:
    """Disable (sessions end at once) or re-enable ``username``."""
    accounts(gw).set_disabled(*_who(actor), username, disabled)


def delete_user(gw: Gateway, actor: User | str, username: str) -> None:
    """Delete ``username`` and their sessions (their past actions stay in the audit log under the name)."""
    accounts(gw).delete(*_who(actor), username)


def set_role(gw: Gateway, actor: User | str, username: str, new_role: str) -> None:
    """Give ``username`` another role of the policy (takes effect at their next request)."""
    _check_role(gw, new_role)
    accounts(gw).set_roles(*_who(actor), username, new_role)


def reset_password(gw: Gateway, actor: User | str, username: str) -> str:
    """Give ``username`` a fresh temporary password (returned once, shown to the administrator only).

    Their sessions end, a login lock is lifted, and the next sign-in may only
    change the password until they choose their own.
    """
    return accounts(gw).reset_password(*_who(actor), username)


def change_password(gw: Gateway, user: User, current: str, new: str, token: str | None = None) -> None:
    """``user`` changes their own password (proving the current one); their other sessions end."""
    accounts(gw).change_password(user.username, user.role, current, new, token)


def unlock(gw: Gateway, actor: User | str, kind: str, key: str) -> bool:
    """Lift the login lock (and back-off) of an account or a client address; logged."""
    return accounts(gw).unlock(*_who(actor), kind, key)


def _who(actor: User | str) -> tuple[str, str]:
    return (actor.username, actor.role) if isinstance(actor, User) else (actor, "admin")
