"""Signing in and out of the escrow's UI (through ``escrow.identity.login``, as the API does), and the start page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from escrow.errors import EscrowError
from escrow.identity import User, login, logout
from escrow.service import Escrow
from escrow.web.render import landing, render
from escrow.web.session import (EscrowDep, SessionDep, WebSession, clear_session_cookie, form, login_nonce_ok, new_login_nonce,
                                set_login_cookie, set_session_cookie)

router = APIRouter()

REASONS = {
    "login": "エスクローの利用者名とパスワードでログインしてください（ゲートウェイのものとは別です）。",
    "token_expired": "セッションの有効期限が切れました。もう一度ログインしてください。",
    "invalid_token": "セッションが無効です（ログアウト済みです）。もう一度ログインしてください。",
    "logged_out": "ログアウトしました。",
}


def safe_next(path: str) -> str:
    """Only a page of this UI: never another host or the API."""
    if path.startswith("/ui/") and not path.startswith(("//", "/\\")) and "\\" not in path and "://" not in path:
        return path
    return "/ui/"


def login_page(request: Request, status: int = 200, *, username: str = "", next_path: str = "", notice: str = "",
               errors: dict[str, str] | None = None) -> Response:
    """The login form with a fresh nonce."""
    nonce = new_login_nonce()
    response = render(request, "login.html", None, status, username=username, next_path=next_path, notice=notice,
                      errors=errors or {}, nonce=nonce)
    set_login_cookie(request, response, nonce)
    return response


def sign_in(escrow: Escrow, username: str, password: str) -> tuple[str, User, object]:
    """``escrow.identity.login`` and the audit entry the API writes for it; refusals are logged without the name typed."""
    try:
        token, user, expires = login(escrow.engine, username, password, escrow.settings.session_minutes)
    except EscrowError as exc:
        raise escrow.refuse("(未認証)", "-", "auth.login", exc) from None
    escrow.record(user.username, user.label, "auth.login", "signed in (web)")
    return token, user, expires


@router.get("/login")
def get_login(request: Request, reason: str = "", next: str = "") -> Response:
    """The login form; ``reason`` says why the user landed here."""
    return login_page(request, next_path=safe_next(next) if next else "", notice=REASONS.get(reason, ""))


@router.post("/login")
async def post_login(request: Request, escrow: EscrowDep, username: Annotated[str, Form(max_length=64)] = "",
                     password: Annotated[str, Form(max_length=1024)] = "", nonce: Annotated[str, Form(max_length=64)] = "",
                     next: Annotated[str, Form(max_length=512)] = "") -> Response:
    """Check the password and put the escrow's session token in the cookie."""
    errors: dict[str, str] = {}
    if not username.strip():
        errors["username"] = "利用者名を入力してください。"
    if not password:
        errors["password"] = "パスワードを入力してください。"
    if not login_nonce_ok(request, nonce):
        errors["form"] = "ログイン画面の有効期限が切れました。もう一度入力してください。"
    if errors:
        return login_page(request, 400 if "form" in errors else 422, username=username, next_path=next, errors=errors)
    try:
        token, user, expires = await run_in_threadpool(sign_in, escrow, username.strip(), password)
    except EscrowError as exc:
        return login_page(request, exc.status, username=username, next_path=next, errors={"form": exc.detail})
    response = RedirectResponse(safe_next(next) if next else landing(user.roles), status_code=303)
    set_session_cookie(request, response, token, expires)
    return response


@router.post("/logout")
def post_logout(request: Request, escrow: EscrowDep, session: Annotated[WebSession, Depends(form())]) -> Response:
    """End the session at the escrow, not only in the browser."""
    logout(escrow.engine, session.token)
    response = RedirectResponse("/ui/login?reason=logged_out", status_code=303)
    clear_session_cookie(request, response)
    return response


@router.get("/")
def get_home(session: SessionDep) -> Response:
    """The first screen the user's roles may open."""
    return RedirectResponse(landing(session.user.roles), status_code=303)
