"""Browser sessions at the escrow: the escrow's own session token in a cookie, CSRF tokens, and the role check.

The cookie holds the bearer token ``escrow.identity.login`` issues, so a page
session expires and is revoked exactly like an API session, and sign-in goes
through the very same function (with whatever throttling it applies). It is
HttpOnly, SameSite=Strict, scoped to ``/ui`` and Secure over TLS. Every POST
form carries an HMAC of the session token as its CSRF token; the login form
uses a random double-submit nonce in a short-lived cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Awaitable, Callable

from fastapi import Depends, Request
from fastapi.responses import Response

from escrow.errors import EscrowError
from escrow.identity import ROLES, User, user_for_token
from escrow.service import Escrow

COOKIE = "tsunagu_escrow_session"
LOGIN_COOKIE = "tsunagu_escrow_login"
CSRF_FIELD = "csrf_token"
_PATH = "/ui"
_CSRF_CONTEXT = b"tsunagu-escrow-web-csrf/1"


class LoginRequired(Exception):
    """No live session: the browser goes to the login page with ``reason`` and comes back to ``next_path``."""

    def __init__(self, reason: str, next_path: str = "") -> None:
        """``reason``: an escrow error code or ``login``."""
        super().__init__(reason)
        self.reason = reason
        self.next_path = next_path


class PageForbidden(Exception):
    """The user's roles may not open this page or send this form (``code``: forbidden or csrf)."""

    def __init__(self, reason: str, code: str = "forbidden") -> None:
        """``reason`` is shown on the 403 page and logged."""
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True, slots=True)
class WebSession:
    """The signed-in escrow user of a page request, with the CSRF token its forms carry."""

    user: User
    token: str

    @property
    def csrf(self) -> str:
        """The CSRF token of this session."""
        return hmac.new(self.token.encode("utf-8"), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(request: Request, response: Response, token: str, expires: datetime) -> None:
    """The session token in an HttpOnly, SameSite=Strict cookie living as long as the session."""
    seconds = max(0, int((expires.replace(tzinfo=expires.tzinfo or timezone.utc) - datetime.now(timezone.utc)).total_seconds()))
    response.set_cookie(COOKIE, token, max_age=seconds, path=_PATH, httponly=True, samesite="strict", secure=_secure(request))


def clear_session_cookie(request: Request, response: Response) -> None:
    """Remove the session cookie."""
    response.delete_cookie(COOKIE, path=_PATH, httponly=True, samesite="strict", secure=_secure(request))


def new_login_nonce() -> str:
    """A fresh double-submit nonce for a login form (see :func:`set_login_cookie`)."""
    return secrets.token_urlsafe(24)


def set_login_cookie(request: Request, response: Response, nonce: str) -> None:
    """Set a login form's nonce as a 10-minute cookie."""
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=600, path=_PATH, httponly=True, samesite="strict", secure=_secure(request))


def login_nonce_ok(request: Request, submitted: str) -> bool:
    """True if a login form's nonce equals its cookie."""
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), submitted.encode())


def get_escrow(request: Request) -> Escrow:
    """The escrow whose UI this is."""
    return request.app.state.escrow


EscrowDep = Annotated[Escrow, Depends(get_escrow)]


def optional_session(request: Request, escrow: EscrowDep) -> WebSession | None:
    """The session of the cookie, or None (no cookie, expired, signed out)."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        user = user_for_token(escrow.engine, token)
    except EscrowError:
        return None
    session = WebSession(user, token)
    request.state.session = session
    request.state.user = user
    return session


def current_session(request: Request, escrow: EscrowDep) -> WebSession:
    """The session of the cookie; otherwise off to the login page (saying why)."""
    token = request.cookies.get(COOKIE)
    next_path = request.url.path if request.method == "GET" else ""
    if not token:
        raise LoginRequired("login", next_path)
    try:
        user = user_for_token(escrow.engine, token)
    except EscrowError as exc:
        raise LoginRequired(exc.code, next_path) from None
    session = WebSession(user, token)
    request.state.session = session  # the error page still shows the navigation
    request.state.user = user
    return session


SessionDep = Annotated[WebSession, Depends(current_session)]


def page(*roles: str) -> Callable[..., Awaitable[WebSession]]:
    """A dependency: a signed-in escrow user holding one of ``roles`` (as the API's ``require``)."""

    async def _check(session: SessionDep) -> WebSession:
        if roles and not session.user.roles & set(roles):
            allowed = "、".join(ROLES[r] for r in roles)
            raise PageForbidden(f"この画面はロール「{session.user.label}」では使えません（使えるのは: {allowed}）。")
        return session

    _check.__name__ = f"page_{'_'.join(roles) or 'any'}"
    return _check


def form(*roles: str) -> Callable[..., Awaitable[WebSession]]:
    """Like :func:`page`, for a POST form: also refuses a request without this session's CSRF token."""

    check = page(*roles)

    async def _check(request: Request, session: SessionDep) -> WebSession:
        submitted = str((await request.form()).get(CSRF_FIELD) or "")
        if not submitted or not hmac.compare_digest(submitted.encode(), session.csrf.encode()):
            raise PageForbidden("フォームの確認用トークンがないか、一致しません。画面を開き直してから、もう一度送信してください。", "csrf")
        return await check(session)

    _check.__name__ = f"form_{'_'.join(roles) or 'any'}"
    return _check
