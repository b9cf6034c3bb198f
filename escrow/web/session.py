"""Browser sessions at the escrow: the cookie, CSRF and nonce of :mod:`service.web.session`, and the role check.

The cookie holds the bearer token ``escrow.identity.login`` issues, so a page
session expires and is revoked exactly like an API session, and sign-in goes
through the very same function, throttled alike. The escrow's cookies have
names and a CSRF context of their own: a gateway session is no escrow session.
"""

from __future__ import annotations

from typing import Annotated, Awaitable, Callable

from fastapi import Depends, Request

from escrow.identity import ROLES, user_for_token
from escrow.service import Escrow
from keys import labels
from service.web.session import Cookies, LoginRequired, PageForbidden, WebSession, check_csrf

__all__ = ["COOKIES", "EscrowDep", "PageForbidden", "SessionDep", "WebSession",
           "current_session", "form", "optional_session", "page"]

COOKIES = Cookies("tsunagu_escrow_session", "tsunagu_escrow_login", labels.ESCROW_CSRF)


def get_escrow(request: Request) -> Escrow:
    """The escrow whose UI this is."""
    return request.app.state.escrow


EscrowDep = Annotated[Escrow, Depends(get_escrow)]


def optional_session(request: Request, escrow: EscrowDep) -> WebSession | None:
    """The session of the cookie, or None (no cookie, expired, signed out)."""
    try:
        return current_session(request, escrow)
    except LoginRequired:
        return None


def current_session(request: Request, escrow: EscrowDep) -> WebSession:
    """The session of the cookie; otherwise off to the login page (saying why)."""
    session = COOKIES.read_session(request, lambda token: user_for_token(escrow.engine, token))
    request.state.user = session.user
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
        await check_csrf(request, session)
        return await check(session)

    _check.__name__ = f"form_{'_'.join(roles) or 'any'}"
    return _check
