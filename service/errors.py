"""The refusals of either service: one exception class per kind of refusal.

A module anywhere in a service raises a :class:`Refusal` subclass that names
the refusal (``raise SourceOwned("…")``) with a Japanese message, without
knowing about HTTP. Each class carries its HTTP ``status`` and its stable
machine-readable ``code`` as class attributes, so a refusal's status and code
are declared once, next to its name, and every raise of it agrees. Each
service's app turns every ``Refusal`` into its HTTP answer in one exception
handler (``gateway/api/main.py``, ``escrow/api/app.py``; the web UIs in their
``web/app.py``), which is also where the refusal is logged.

The account lifecycle's refusals (:mod:`service.accounts`) are the same at
both services and are declared here, once; :func:`of_service` makes each of
them a subclass of the serving service's base too, so ``except GatewayError``
still catches the gateway's. The three-argument form
``GatewayError(status, code, detail)`` is still accepted by the constructor,
but a structure test (``tests/structure/test_named_refusals.py``) refuses it
in the product code.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, ClassVar, TypeVar

if TYPE_CHECKING:
    from service.frontdoor.throttle import LoginRefused

_R = TypeVar("_R", bound="Refusal")


class Refusal(Exception):
    """A request or command a service refuses; ``detail`` never contains identity data or secrets."""

    #: the HTTP status this refusal is answered with
    status: ClassVar[int] = 400
    #: the stable machine-readable code clients and tests match on
    code: ClassVar[str] = "refused"

    def __init__(self, *args: object) -> None:
        """``Refusal(detail)`` for a named subclass, or ``Refusal(status, code, detail)``.

        ``detail`` is Japanese, for staff.
        """
        if len(args) == 1:
            (detail,) = args
        elif len(args) == 3:
            status, code, detail = args
            self.status = int(status)  # type: ignore[misc]
            self.code = str(code)  # type: ignore[misc]
        else:
            raise TypeError("Refusal(detail) or Refusal(status, code, detail)")
        super().__init__(detail)
        self.detail = str(detail)
        #: set once the refusal is in the service's audit log (the escrow logs each exactly once)
        self.logged = False


# ---- The account lifecycle (service.accounts), the same at both services ------------------------------


class AccountRefusal(Refusal):
    """A refusal of the account lifecycle: sign-in, sessions, users, passwords, locks."""


class InvalidUsername(AccountRefusal):
    """A user name outside letters, digits and ``. _ @ -`` or longer than 64 characters."""

    status = 422
    code = "invalid_username"


class UserExists(AccountRefusal):
    """A user name already taken."""

    status = 409
    code = "user_exists"


class PasswordTooWeak(AccountRefusal):
    """A new password the password rule (``service.frontdoor.passwords``) refuses."""

    status = 422
    code = "weak_password"


class LoginFailed(AccountRefusal):
    """A wrong user name or password (one answer for both, so names cannot be probed)."""

    status = 401
    code = "login_failed"


class InvalidToken(AccountRefusal):
    """A session token that belongs to no session."""

    status = 401
    code = "invalid_token"


class TokenExpired(AccountRefusal):
    """A session token whose session has expired."""

    status = 401
    code = "token_expired"


class UserDisabled(AccountRefusal):
    """A session of a user an administrator disabled."""

    status = 401
    code = "user_disabled"


class UnknownUser(AccountRefusal):
    """A user name no user has."""

    status = 404
    code = "unknown_user"


class LastAdmin(AccountRefusal):
    """A change that would leave nobody able to manage accounts."""

    status = 409
    code = "last_admin"


class SelfDisable(AccountRefusal):
    """An administrator disabling themselves."""

    status = 409
    code = "self_disable"


class SelfDelete(AccountRefusal):
    """An administrator deleting themselves."""

    status = 409
    code = "self_delete"


class WrongPassword(AccountRefusal):
    """A password change whose current password is wrong."""

    status = 422
    code = "wrong_password"


class SamePassword(AccountRefusal):
    """A password change to the password in use."""

    status = 422
    code = "same_password"


class UnknownLockKind(AccountRefusal):
    """A lock to lift that is neither an account's nor a client address's."""

    status = 422
    code = "unknown_lock_kind"


class InvalidLockKey(AccountRefusal):
    """A lock to lift named by something that is neither a user name nor an IP address."""

    status = 422
    code = "invalid_lock_key"


class ThrottleRefused(AccountRefusal):
    """A sign-in the throttle refused before the password was looked at: 429 (wait) or 403 (locked).

    The status and the code are the throttle's (``service.frontdoor.throttle``:
    ``login_throttled``, ``address_throttled``, ``address_locked``, ``account_locked``).
    """

    def __init__(self, refused: LoginRefused) -> None:
        """The throttle's refusal ``refused``, answered as the throttle decided."""
        super().__init__(refused.detail)
        self.status, self.code = refused.status, refused.code  # type: ignore[misc]


@cache
def of_service(refusal: type[_R], base: type[Refusal]) -> type[_R]:
    """``refusal`` (a shared class above) as a subclass of the service's ``base`` too; the same class each time."""
    if issubclass(refusal, base):
        return refusal
    return type(refusal.__name__, (refusal, base), {"__module__": refusal.__module__, "__qualname__": refusal.__qualname__,
                                                   "__doc__": refusal.__doc__})


# ---- Web forms both services show (service.web) -----------------------------------------------------------------


class FormExpired(Refusal):
    """A form whose one-time nonce is missing or stale (the page was open too long)."""

    status = 400
    code = "form_expired"


class CredentialsMissing(Refusal):
    """A sign-in form without a user name or password."""

    status = 422
    code = "credentials_missing"
