"""Browser sessions for the web UI: the gateway's own session token in a cookie, CSRF tokens, and the role check.

The cookie holds the very bearer token ``gateway.identity.login`` issues, so a
page session expires, and is revoked, exactly like an API session. It is
HttpOnly (no script reads it), SameSite=Strict (no other site's page sends
it), scoped to ``/ui`` and Secure whenever the request came over TLS.

CSRF: every POST form carries a hidden ``csrf_token``, an HMAC of the session
token. It is tied to the session, needs no server state, and reveals nothing
about the token. The login form, which has no session yet, uses a random
double-submit nonce in a short-lived cookie of its own.
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

from gateway.core import Gateway
from gateway.errors import GatewayError
from gateway.identity import User, user_for_token

COOKIE = "tsunagu_session"
LOGIN_COOKIE = "tsunagu_login"
CSRF_FIELD = "csrf_token"
_PATH = "/ui"
_CSRF_CONTEXT = b"tsunagu-web-csrf/1"


class LoginRequired(Exception):
    """No live session: the browser is sent to the login page, with ``reason`` (a gateway error code) explained there."""

    def __init__(self, reason: str, next_path: str = "") -> None:
        """``reason``: why (``login``, ``token_expired``, ``invalid_token``, ``user_disabled``); ``next_path``: where to return."""
        super().__init__(reason)
        self.reason = reason
        self.next_path = next_path


class PasswordChangeRequired(Exception):
    """The user signed in with a temporary password: every page but the password page sends them there."""


class PageForbidden(Exception):
    """The role may not see or do this; the 403 page shows ``reason`` (the policy's own words)."""

    def __init__(self, reason: str, code: str = "forbidden") -> None:
        """``code`` is logged with the refusal (``forbidden`` or ``csrf``)."""
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True, slots=True)
class WebSession:
    """The signed-in user of a page request, with the CSRF token its forms carry."""

    user: User
    token: str

    @property
    def csrf(self) -> str:
        """The CSRF token of this session."""
        return csrf_token(self.token)


def csrf_token(session_token: str) -> str:
    """The CSRF token bound to ``session_token``."""
    return hmac.new(session_token.encode("utf-8"), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


def set_session_cookie(request: Request, response: Response, token: str, expires: datetime) -> None:
    """Put the session token in an HttpOnly, SameSite=Strict cookie that lives as long as the session."""
    seconds = max(0, int((expires.replace(tzinfo=expires.tzinfo or timezone.utc) - datetime.now(timezone.utc)).total_seconds()))
    response.set_cookie(COOKIE, token, max_age=seconds, path=_PATH, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def clear_session_cookie(request: Request, response: Response) -> None:
    """Remove the session cookie."""
    response.delete_cookie(COOKIE, path=_PATH, httponly=True, samesite="strict", secure=request.url.scheme == "https")


def new_login_nonce() -> str:
    """A fresh double-submit nonce for the login form (see :func:`set_login_cookie`)."""
    return secrets.token_urlsafe(24)


def set_login_cookie(request: Request, response: Response, nonce: str) -> None:
    """Set the login form's nonce as a 10-minute cookie."""
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=600, path=_PATH, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def clear_login_cookie(request: Request, response: Response) -> None:
    """Remove the login form's nonce once it served."""
    response.delete_cookie(LOGIN_COOKIE, path=_PATH, httponly=True, samesite="strict", secure=request.url.scheme == "https")


def login_nonce_ok(request: Request, submitted: str) -> bool:
    """True if the login form's nonce equals its cookie."""
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), submitted.encode())


async def get_gateway(request: Request) -> Gateway:
    """The gateway whose UI this is."""
    return request.app.state.gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


def current_session(request: Request, gw: GatewayDep) -> WebSession:
    """The session of the cookie; otherwise off to the login page (saying whether it expired)."""
    token = request.cookies.get(COOKIE)
    next_path = request.url.path if request.method == "GET" else ""
    if not token:
        raise LoginRequired("login", next_path)
    try:
        user = user_for_token(gw, token)
    except GatewayError as exc:
        raise LoginRequired(exc.code, next_path) from None
    session = WebSession(user, token)
    request.state.session = session  # so that an error page still shows the navigation
    return session


SessionDep = Annotated[WebSession, Depends(current_session)]


def page(permission: str) -> Callable[..., Awaitable[WebSession]]:
    """A dependency: a signed-in user whose role the policy gives ``permission`` (as the API's ``require``)."""

    async def _check(gw: GatewayDep, session: SessionDep) -> WebSession:
        if session.user.must_change_password:
            raise PasswordChangeRequired()
        decision = gw.policy.may(session.user.role, permission)
        if not decision.allowed:
            raise PageForbidden(decision.reason)
        return session

    _check.__name__ = f"page_{permission.replace('.', '_')}"
    return _check


def form_action(permission: str | None) -> Callable[..., Awaitable[WebSession]]:
    """Like :func:`page`, for a POST form: also refuses a request without this session's CSRF token.

    ``permission`` None: any signed-in user (logging out).
    """

    check = page(permission) if permission else None

    async def _check(request: Request, gw: GatewayDep, session: SessionDep) -> WebSession:
        form = await request.form()
        submitted = str(form.get(CSRF_FIELD) or "")
        if not submitted or not hmac.compare_digest(submitted.encode(), session.csrf.encode()):
            raise PageForbidden("フォームの確認用トークンがないか、一致しません。画面を開き直してから、もう一度送信してください。", "csrf")
        return await check(gw, session) if check else session

    _check.__name__ = f"form_{(permission or 'any').replace('.', '_')}"
    return _check


AnyFormSession = Annotated[WebSession, Depends(form_action(None))]
