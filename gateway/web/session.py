"""Browser sessions of the gateway's UI: the cookie, CSRF and nonce of :mod:`service.web.session`, and the policy's check.

The cookie holds the very bearer token ``gateway.identity.login`` issues, so a
page session expires, and is revoked, exactly like an API session. Whether a
role may open a page is asked of the policy, as the API's ``require`` does.
"""

from __future__ import annotations

from typing import Annotated, Awaitable, Callable

from fastapi import Depends, Request

from gateway.core import Gateway
from gateway.identity import user_for_token
from keys import labels
from service.web.session import CSRF_FIELD, Cookies, PageForbidden, WebSession, check_csrf

__all__ = ["COOKIE", "COOKIES", "CSRF_FIELD", "AnyFormSession", "GatewayDep", "PageForbidden",
           "PasswordChangeRequired", "SessionDep", "WebSession", "csrf_token", "current_session", "form_action", "page"]

COOKIES = Cookies("tsunagu_session", "tsunagu_login", labels.GATEWAY_CSRF)
#: the cookie's name and the CSRF token of a session token, as a client outside the browser (a test) needs them
COOKIE = COOKIES.session_name
csrf_token = COOKIES.csrf_token


class PasswordChangeRequired(Exception):
    """The user signed in with a temporary password: every page but the password page sends them there."""


async def get_gateway(request: Request) -> Gateway:
    """The gateway whose UI this is."""
    return request.app.state.gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


def current_session(request: Request, gw: GatewayDep) -> WebSession:
    """The session of the cookie; otherwise off to the login page (saying whether it expired)."""
    return COOKIES.read_session(request, lambda token: user_for_token(gw, token))


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
        await check_csrf(request, session)
        return await check(gw, session) if check else session

    _check.__name__ = f"form_{(permission or 'any').replace('.', '_')}"
    return _check


AnyFormSession = Annotated[WebSession, Depends(form_action(None))]
