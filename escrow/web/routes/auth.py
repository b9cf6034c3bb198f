"""Signing in and out of the escrow's UI (the form is :mod:`service.web.login`'s; the sign-in is the API's own), and the start page."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from escrow.identity import logout, sign_in
from escrow.web.render import landing, render
from escrow.web.session import COOKIES, EscrowDep, SessionDep, WebSession, form
from service.web.login import REASONS as _SHARED_REASONS
from service.web.login import LoginFormDep, add_login_form, safe_next, sign_in_from_form, signed_out

router = APIRouter()

REASONS = {
    **_SHARED_REASONS,
    "login": "エスクローの利用者名とパスワードでログインしてください（ゲートウェイのものとは別です）。",
    "invalid_token": "セッションが無効です（ログアウト済みです）。もう一度ログインしてください。",
}


def address(request: Request) -> str | None:
    """The client address the login throttle counts failures of."""
    return request.client.host if request.client else None


add_login_form(router, render, COOKIES, REASONS)


@router.post("/login")
async def post_login(request: Request, escrow: EscrowDep, form: LoginFormDep) -> Response:
    """Check the password (throttled, as at the API) and put the escrow's session token in the cookie."""
    def check(username: str, password: str) -> tuple[str, str, datetime]:
        token, user, expires = sign_in(escrow, username, password, address(request), "signed in (web)")
        return token, safe_next(form.next) if form.next else landing(user.roles), expires

    return await sign_in_from_form(request, render, COOKIES, form, check)


@router.post("/logout")
def post_logout(request: Request, escrow: EscrowDep, session: Annotated[WebSession, Depends(form())]) -> Response:
    """End the session at the escrow, not only in the browser."""
    logout(escrow.engine, session.token)
    return signed_out(request, COOKIES)


@router.get("/")
def get_home(session: SessionDep) -> Response:
    """The first screen the user's roles may open."""
    return RedirectResponse(landing(session.user.roles), status_code=303)
