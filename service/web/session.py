"""Browser sessions of both services' UIs: the service's own session token in a cookie, CSRF tokens, the login nonce.

The cookie holds the very bearer token the service's ``identity.login``
issues, so a page session expires, and is revoked, exactly like an API
session. It is HttpOnly (no script reads it), SameSite=Strict (no other
site's page sends it), scoped to ``/ui`` and Secure whenever the request came
over TLS.

CSRF: every POST form carries a hidden ``csrf_token``, an HMAC of the session
token under a context string of the service. It is tied to the session,
needs no server state, and reveals nothing about the token. The login form,
which has no session yet, uses a random double-submit nonce in a short-lived
cookie of its own.

Who may open which page is the service's own rule (the gateway asks its
policy, the escrow its roles); it lives in the service's ``web/session.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from fastapi import Request
from fastapi.responses import Response

from service.errors import Refusal

CSRF_FIELD = "csrf_token"
_PATH = "/ui"
_LOGIN_NONCE_SECONDS = 600


class LoginRequired(Exception):
    """No live session: the browser goes to the login page with ``reason`` and comes back to ``next_path``."""

    def __init__(self, reason: str, next_path: str = "") -> None:
        """``reason``: why (``login``, ``token_expired``, ``invalid_token``, ``user_disabled``); ``next_path``: where to return."""
        super().__init__(reason)
        self.reason = reason
        self.next_path = next_path


class PageForbidden(Exception):
    """The user may not see or do this; the 403 page shows ``reason``."""

    def __init__(self, reason: str, code: str = "forbidden") -> None:
        """``code`` is logged with the refusal (``forbidden`` or ``csrf``)."""
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True, slots=True)
class WebSession:
    """The signed-in user of a page request (the service's own ``User``), with the CSRF token its forms carry."""

    user: Any
    token: str
    csrf: str


@dataclass(frozen=True)
class Cookies:
    """The cookies of one service's UI: the session, the login form's nonce, and the CSRF context they are bound to."""

    session_name: str
    login_name: str
    csrf_context: bytes

    def csrf_token(self, session_token: str) -> str:
        """The CSRF token bound to ``session_token``."""
        return hmac.new(session_token.encode("utf-8"), self.csrf_context, hashlib.sha256).hexdigest()

    def session(self, user: Any, token: str) -> WebSession:
        """The page session of ``user`` signed in with ``token``."""
        return WebSession(user, token, self.csrf_token(token))

    def set_session_cookie(self, request: Request, response: Response, token: str, expires: datetime) -> None:
        """Put the session token in an HttpOnly, SameSite=Strict cookie that lives as long as the session."""
        seconds = max(0, int((expires.replace(tzinfo=expires.tzinfo or timezone.utc) - datetime.now(timezone.utc)).total_seconds()))
        self._set(request, response, self.session_name, token, seconds)

    def clear_session_cookie(self, request: Request, response: Response) -> None:
        """Remove the session cookie."""
        response.delete_cookie(self.session_name, path=_PATH, httponly=True, samesite="strict", secure=_secure(request))

    def set_login_cookie(self, request: Request, response: Response, nonce: str) -> None:
        """Set the login form's nonce as a 10-minute cookie."""
        self._set(request, response, self.login_name, nonce, _LOGIN_NONCE_SECONDS)

    def clear_login_cookie(self, request: Request, response: Response) -> None:
        """Remove the login form's nonce once it served."""
        response.delete_cookie(self.login_name, path=_PATH, httponly=True, samesite="strict", secure=_secure(request))

    def login_nonce_ok(self, request: Request, submitted: str) -> bool:
        """True if the login form's nonce equals its cookie."""
        cookie = request.cookies.get(self.login_name, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), submitted.encode())

    def read_session(self, request: Request, user_for_token: Callable[[str], Any]) -> WebSession:
        """The session of the cookie (``user_for_token`` raises a :class:`Refusal` if it is dead); otherwise :class:`LoginRequired`."""
        token = request.cookies.get(self.session_name)
        next_path = request.url.path if request.method == "GET" else ""
        if not token:
            raise LoginRequired("login", next_path)
        try:
            user = user_for_token(token)
        except Refusal as exc:
            raise LoginRequired(exc.code, next_path) from None
        session = self.session(user, token)
        request.state.session = session  # so that an error page still shows the navigation
        return session

    def _set(self, request: Request, response: Response, name: str, value: str, seconds: int) -> None:
        response.set_cookie(name, value, max_age=seconds, path=_PATH, httponly=True, samesite="strict", secure=_secure(request))


def new_login_nonce() -> str:
    """A fresh double-submit nonce for a login form (see :meth:`Cookies.set_login_cookie`)."""
    return secrets.token_urlsafe(24)


async def check_csrf(request: Request, session: WebSession) -> None:
    """Refuse a POST form without this session's CSRF token (403, code ``csrf``)."""
    submitted = str((await request.form()).get(CSRF_FIELD) or "")
    if not submitted or not hmac.compare_digest(submitted.encode(), session.csrf.encode()):
        raise PageForbidden("フォームの確認用トークンがないか、一致しません。画面を開き直してから、もう一度送信してください。", "csrf")


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"
