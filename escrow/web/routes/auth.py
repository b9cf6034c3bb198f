"""Signing in and out of the escrow's UI (the form is :mod:`service.web.login`'s; the sign-in is the API's own), and the start page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from escrow.errors import EscrowError
from escrow.identity import logout, sign_in
from escrow.web.render import landing, render
from escrow.web.session import COOKIES, EscrowDep, SessionDep, WebSession, form
from service.web.login import REASONS as _SHARED_REASONS
from service.web.login import error_status, form_errors, login_page, safe_next, signed_in, signed_out

router = APIRouter()

REASONS = {
    **_SHARED_REASONS,
    "login": "エスクローの利用者名とパスワードでログインしてください（ゲートウェイのものとは別です）。",
    "invalid_token": "セッションが無効です（ログアウト済みです）。もう一度ログインしてください。",
}


def address(request: Request) -> str | None:
    """The client address the login throttle counts failures of."""
    return request.client.host if request.client else None


@router.get("/login")
def get_login(request: Request, reason: str = "", next: str = "") -> Response:
    """The login form; ``reason`` says why the user landed here."""
    return login_page(request, render, COOKIES, next_path=safe_next(next) if next else "", notice=REASONS.get(reason, ""))


@router.post("/login")
async def post_login(request: Request, escrow: EscrowDep, username: Annotated[str, Form(max_length=64)] = "",
                     password: Annotated[str, Form(max_length=1024)] = "", nonce: Annotated[str, Form(max_length=64)] = "",
                     next: Annotated[str, Form(max_length=512)] = "") -> Response:
    """Check the password (throttled, as at the API) and put the escrow's session token in the cookie."""
    errors = form_errors(request, COOKIES, username, password, nonce)
    if errors:
        return login_page(request, render, COOKIES, error_status(errors), username=username, next_path=next, errors=errors)
    try:
        token, user, expires = await run_in_threadpool(sign_in, escrow, username.strip(), password, address(request),
                                                       "signed in (web)")
    except EscrowError as exc:
        return login_page(request, render, COOKIES, exc.status, username=username, next_path=next, errors={"form": exc.detail})
    return signed_in(request, COOKIES, safe_next(next) if next else landing(user.roles), token, expires)


@router.post("/logout")
def post_logout(request: Request, escrow: EscrowDep, session: Annotated[WebSession, Depends(form())]) -> Response:
    """End the session at the escrow, not only in the browser."""
    logout(escrow.engine, session.token)
    return signed_out(request, COOKIES)


@router.get("/")
def get_home(session: SessionDep) -> Response:
    """The first screen the user's roles may open."""
    return RedirectResponse(landing(session.user.roles), status_code=303)
