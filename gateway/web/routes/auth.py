"""Signing in and out of the web UI, and the start page that sends each role to its first screen."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from gateway.errors import GatewayError
from gateway.identity import login, logout
from gateway.web.render import landing, render
from gateway.web.session import (
    AnyFormSession,
    GatewayDep,
    SessionDep,
    clear_login_cookie,
    clear_session_cookie,
    login_nonce_ok,
    new_login_nonce,
    set_login_cookie,
    set_session_cookie,
)

router = APIRouter()

#: Why the login page is shown, keyed by the gateway's error code.
REASONS = {
    "login": "ログインしてください。",
    "token_expired": "セッションの有効期限が切れました。もう一度ログインしてください。",
    "invalid_token": "セッションが無効です（ログアウト済みか、管理者が終了しました）。もう一度ログインしてください。",
    "user_disabled": "この利用者は無効になっています。管理者に連絡してください。",
    "logged_out": "ログアウトしました。",
}


def _safe_next(path: str) -> str:
    # Only a page of this UI: never another host ("//evil", "/\\evil") or the API.
    if path.startswith("/ui/") and not path.startswith(("//", "/\\")) and "\\" not in path and "://" not in path:
        return path
    return "/ui/"


def _login_page(request: Request, status: int = 200, *, username: str = "", next_path: str = "",
                notice: str = "", errors: dict[str, str] | None = None) -> Response:
    nonce = new_login_nonce()
    response = render(request, "login.html", None, status, username=username, next_path=next_path, notice=notice,
                      errors=errors or {}, nonce=nonce)
    set_login_cookie(request, response, nonce)
    return response


@router.get("/login")
def get_login(request: Request, reason: str = "", next: str = "") -> Response:
    """The login form; ``reason`` explains why the user landed here (expired session, logged out …)."""
    return _login_page(request, next_path=_safe_next(next) if next else "", notice=REASONS.get(reason, ""))


@router.post("/login")
def post_login(request: Request, gw: GatewayDep, username: Annotated[str, Form(max_length=64)] = "",
               password: Annotated[str, Form(max_length=1024)] = "", nonce: Annotated[str, Form(max_length=64)] = "",
               next: Annotated[str, Form(max_length=512)] = "") -> Response:
    """Check the password through the gateway's login and put the session token in the cookie."""
    errors: dict[str, str] = {}
    if not username.strip():
        errors["username"] = "利用者名を入力してください。"
    if not password:
        errors["password"] = "パスワードを入力してください。"
    if not login_nonce_ok(request, nonce):
        errors["form"] = "ログイン画面の有効期限が切れました。もう一度入力してください。"
    if errors:
        return _login_page(request, 400 if "form" in errors else 422, username=username, next_path=next, errors=errors)
    try:
        token, user, expires = login(gw, username.strip(), password, address=request.client.host if request.client else None)
    except GatewayError as exc:
        gw.event("web", exc.status, exc.code, exc.detail, path="POST /ui/login")
        return _login_page(request, exc.status, username=username, next_path=next, errors={"form": exc.detail})
    # A temporary password (after an administrator's reset) opens only the password page.
    response = RedirectResponse("/ui/password?reason=temporary" if user.must_change_password else _safe_next(next), status_code=303)
    set_session_cookie(request, response, token, expires)
    clear_login_cookie(request, response)
    return response


@router.post("/logout")
def post_logout(request: Request, gw: GatewayDep, session: AnyFormSession) -> Response:
    """End the session (in the gateway, not only in the browser)."""
    logout(gw, session.token)
    response = RedirectResponse("/ui/login?reason=logged_out", status_code=303)
    clear_session_cookie(request, response)
    return response


@router.get("/")
def get_home(request: Request, gw: GatewayDep, session: SessionDep) -> Response:
    """The first screen the user's role may open."""
    start = landing(gw, session.user.role)
    if start:
        return RedirectResponse(start, status_code=303)
    return render(request, "error.html", session, 200, title="利用できる画面がありません",
                  message="このロールに割り当てられた画面はありません。必要な権限は管理者に相談してください。")
