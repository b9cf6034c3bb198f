"""Login throttling: failed sign-ins counted per account and per client address, back-off, then a lock.

Every failed sign-in adds one to the account's counter (when the account
exists) and to the client address's counter. Past ``backoff_after`` failures
each further attempt must wait ``base_seconds · 2^(n − backoff_after)``
(capped); an attempt made while waiting is refused without the password being
checked, and still counts. Past ``lock_after`` failures the account is locked
until an administrator unlocks it; an address is locked for
``address_lock_minutes`` (or until an administrator lifts it). A success
clears the account's counter, never the address's: one valid account must not
launder a guessing run.

State lives in the service's own database (table ``login_throttle``, under
the service's Alembic migrations), so it
holds across restarts and an administrator's CLI in another process sees and
lifts the same locks. Counters are raised with ``UPDATE … SET failures =
failures + 1``, so concurrent attempts are never lost.

Only accounts that exist get a row; unknown user names are throttled by the
client address alone, so the table cannot be grown by inventing names.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Boolean, Column, DateTime, Integer, MetaData, String, Table, delete, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

#: Created by the services' Alembic migrations (:func:`service.schema.create_service_tables`), never at runtime.
metadata = MetaData()
login_throttle = Table(
    "login_throttle",
    metadata,
    Column("kind", String(8), primary_key=True),  # account | address
    Column("key", String(64), primary_key=True),  # the user name, or the client's IP address
    Column("failures", Integer, nullable=False),
    Column("last_failure_at", DateTime, nullable=False),
    Column("wait_until", DateTime),  # back-off: no attempt is checked before this
    Column("locked", Boolean, nullable=False),  # account: until an administrator unlocks; address: until wait_until
)

ACCOUNT, ADDRESS = "account", "address"


@dataclass(frozen=True)
class ThrottleRules:
    """How many failures lead to back-off and to a lock, per account and per address."""

    backoff_after: int = 5
    lock_after: int = 10
    address_backoff_after: int = 20
    address_lock_after: int = 100
    address_lock_minutes: int = 60
    base_seconds: float = 1.0
    max_wait_seconds: float = 15 * 60
    #: a counter not raised for this long starts again from zero (a lock stays until lifted)
    forget_after_hours: int = 24


class LoginRefused(Exception):
    """A sign-in refused by the throttle before the password was looked at (Japanese ``detail``)."""

    def __init__(self, status: int, code: str, detail: str, retry_after: int | None = None) -> None:
        """``status`` 429 (wait) or 403 (locked); ``retry_after`` in seconds when waiting helps."""
        super().__init__(detail)
        self.status, self.code, self.detail, self.retry_after = status, code, detail, retry_after
        #: this very attempt (counted as a failure) locked the account: the caller logs the lock
        self.account_locked = False


@dataclass(frozen=True)
class FailureOutcome:
    """What one failure did: whether it locked the account or the address just now."""

    account_locked: bool = False
    address_locked: bool = False


_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def valid_lock_key(kind: str, key: str) -> bool:
    """True if ``key`` can name a lock of ``kind``: a user name, or an IP address (what unlock requests are checked against)."""
    if kind == ACCOUNT:
        return bool(_USERNAME.match(key))
    if kind == ADDRESS:
        try:
            ipaddress.ip_address(key)
        except ValueError:
            return False
        return True
    return False


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class LoginThrottle:
    """The throttle on ``engine`` (its table comes with the service's migrations)."""

    def __init__(self, engine: Engine, rules: ThrottleRules | None = None) -> None:
        """Open the throttle; ``rules`` default to :class:`ThrottleRules`."""
        self.engine = engine
        self.rules = rules or ThrottleRules()

    def check(self, account: str | None, address: str | None) -> None:
        """Raise :class:`LoginRefused` (and count the attempt) if the account or the address must not try now."""
        now = _now()
        with self.engine.connect() as conn:
            rows = {r.kind: r for r in conn.execute(select(login_throttle).where(
                ((login_throttle.c.kind == ACCOUNT) & (login_throttle.c.key == (account or "")))
                | ((login_throttle.c.kind == ADDRESS) & (login_throttle.c.key == (address or ""))))).all()}
        account_row, address_row = rows.get(ACCOUNT), rows.get(ADDRESS)
        refusal: LoginRefused | None = None
        if account_row is not None and account_row.locked:
            refusal = LoginRefused(403, "account_locked", "この利用者は、パスワードの誤りが続いたためロックされています。管理者にロックの解除を依頼してください。")
        elif address_row is not None and address_row.wait_until and address_row.wait_until > now:
            wait = _seconds(address_row.wait_until - now)
            refusal = LoginRefused(429, "address_throttled" if not address_row.locked else "address_locked",
                                   f"この端末からのログインの失敗が多すぎます。{_minutes(wait)}後にもう一度試すか、管理者に連絡してください。", wait)
        elif account_row is not None and account_row.wait_until and account_row.wait_until > now:
            wait = _seconds(account_row.wait_until - now)
            refusal = LoginRefused(429, "login_throttled", f"パスワードの誤りが続いています。{_minutes(wait)}後にもう一度試してください。", wait)
        if refusal is not None:
            # Trying while told to wait is one more failed attempt (and may be the one that locks the account).
            refusal.account_locked = self.failed(account if account_row is not None else None, address).account_locked
            raise refusal

    def failed(self, account: str | None, address: str | None) -> FailureOutcome:
        """Count one failure for the (existing) ``account`` and for ``address``; say what it locked."""
        now = _now()
        locked = {ACCOUNT: False, ADDRESS: False}
        with self.engine.begin() as conn:
            for kind, key in ((ACCOUNT, account), (ADDRESS, address)):
                if key:
                    locked[kind] = self._raise(conn, kind, key[:64], now)
        return FailureOutcome(locked[ACCOUNT], locked[ADDRESS])

    def _raise(self, conn: Connection, kind: str, key: str, now: datetime) -> bool:
        t, r = login_throttle, self.rules
        where = (t.c.kind == kind) & (t.c.key == key)
        # Writing first takes SQLite's write lock, so the read below sees every concurrent failure.
        done = conn.execute(update(t).where(where).values(failures=t.c.failures + 1)).rowcount
        if not done:
            try:
                with conn.begin_nested():
                    conn.execute(insert(t).values(kind=kind, key=key, failures=1, last_failure_at=now, wait_until=None, locked=False))
            except IntegrityError:
                conn.execute(update(t).where(where).values(failures=t.c.failures + 1))
        row = conn.execute(select(t).where(where)).one()
        failures, wait_until, lock = row.failures, row.wait_until, bool(row.locked)
        lapsed = kind == ADDRESS and lock and (wait_until is None or wait_until <= now)
        forgotten = not lock and now - row.last_failure_at > timedelta(hours=r.forget_after_hours)
        if lapsed or forgotten:
            failures, wait_until, lock = 1, None, False
        backoff_after, lock_after = (r.backoff_after, r.lock_after) if kind == ACCOUNT else (r.address_backoff_after, r.address_lock_after)
        newly_locked = False
        if failures >= lock_after and not lock:
            lock = newly_locked = True
            wait_until = now + timedelta(minutes=r.address_lock_minutes) if kind == ADDRESS else None
        elif failures >= backoff_after and not lock:
            wait = min(r.base_seconds * 2 ** (failures - backoff_after), r.max_wait_seconds)
            wait_until = now + timedelta(seconds=wait)
        conn.execute(update(t).where(where).values(failures=failures, last_failure_at=now, wait_until=wait_until, locked=lock))
        return newly_locked

    def succeeded(self, account: str) -> None:
        """A correct password for ``account``: its counter starts again (the address's does not)."""
        with self.engine.begin() as conn:
            conn.execute(delete(login_throttle).where((login_throttle.c.kind == ACCOUNT) & (login_throttle.c.key == account)))

    def unlock(self, kind: str, key: str) -> bool:
        """Lift the lock and back-off of an account or an address; False if there was nothing to lift."""
        if kind not in (ACCOUNT, ADDRESS):
            raise ValueError(kind)
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(login_throttle).where((login_throttle.c.kind == kind) & (login_throttle.c.key == key))).rowcount)

    def forget(self, account: str) -> None:
        """Drop an account's counter (the account was deleted)."""
        self.succeeded(account)

    def state(self, kind: str, key: str) -> dict | None:
        """The counter of one account or address (None if it has none)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(login_throttle).where((login_throttle.c.kind == kind) & (login_throttle.c.key == key))).first()
        return _describe(row, _now()) if row else None

    def lockouts(self) -> list[dict]:
        """Every account and address that is locked or must wait now, for the administrator."""
        now = _now()
        with self.engine.connect() as conn:
            rows = conn.execute(select(login_throttle).where(login_throttle.c.locked.is_(True) | (login_throttle.c.wait_until > now))
                                .order_by(login_throttle.c.kind, login_throttle.c.key)).all()
        return [_describe(r, now) for r in rows]


def _describe(row, now: datetime) -> dict:
    locked = bool(row.locked) and (row.kind == ACCOUNT or (row.wait_until is not None and row.wait_until > now))
    return {"kind": row.kind, "key": row.key, "failures": row.failures, "locked": locked,
            "wait_until": row.wait_until.replace(tzinfo=timezone.utc).isoformat(timespec="seconds") if row.wait_until and row.wait_until > now else None,
            "last_failure_at": row.last_failure_at.replace(tzinfo=timezone.utc).isoformat(timespec="seconds")}


def _seconds(delta: timedelta) -> int:
    return max(1, int(delta.total_seconds() + 0.999))


def _minutes(seconds: int) -> str:
    return f"{seconds} 秒" if seconds < 120 else f"{(seconds + 59) // 60} 分"
