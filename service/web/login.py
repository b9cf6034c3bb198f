"""The sign-in screen both UIs share: the form's checks, its nonce, the redirect after it, signing out.

The password check itself is the service's (``identity.login``, throttled
and logged there); what is the same in both UIs is the form around it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from service.web.session import Cookies, new_login_nonce

#: Why the login page is shown, keyed by the service's error code (a service adds or rewords its own).
REASONS = {
    "login": "ログインしてください。",
    "token_expired": "セッションの有効期限が切れました。もう一度ログインしてください。",
    "invalid_token": "セッションが無効です（ログアウト済みか、管理者が終了しました）。もう一度ログインしてください。",
    "user_disabled": "この利用者は無効になっています。管理者に連絡してください。",
    "logged_out": "ログアウトしました。",
}

#: ``render(request, template, session, status, **context)``: the service's page renderer.
Render = Callable[..., Response]


def safe_next(path: str) -> str:
    """Only a page of this UI: never another host (``//evil``, ``/\\evil``) or the API."""
    if path.startswith("/ui/") and not path.startswith(("//", "/\\")) and "\\" not in path and "://" not in path:
        return path
    return "/ui/"


def form_errors(request: Request, cookies: Cookies, username: str, password: str, nonce: str) -> dict[str, str]:
    """What is missing from a submitted login form, by field (``form``: the form's nonce is stale)."""
    errors: dict[str, str] = {}
    if not username.strip():
        errors["username"] = "利用者名を入力してください。"
    if not password:
        errors["password"] = "パスワードを入力してください。"
    if not cookies.login_nonce_ok(request, nonce):
        errors["form"] = "ログイン画面の有効期限が切れました。もう一度入力してください。"
    return errors


def error_status(errors: dict[str, str]) -> int:
    """400 for a stale form, 422 for a missing field."""
    return 400 if "form" in errors else 422


def login_page(request: Request, render: Render, cookies: Cookies, status: int = 200, *, username: str = "",
               next_path: str = "", notice: str = "", errors: dict[str, str] | None = None) -> Response:
    """The login form (``login.html``) with a fresh nonce in its cookie."""
    nonce = new_login_nonce()
    response = render(request, "login.html", None, status, username=username, next_path=next_path, notice=notice,
                      errors=errors or {}, nonce=nonce)
    cookies.set_login_cookie(request, response, nonce)
    return response


def signed_in(request: Request, cookies: Cookies, target: str, token: str, expires: datetime) -> Response:
    """Off to ``target`` with the session in its cookie; the login nonce has served."""
    response = RedirectResponse(target, status_code=303)
    cookies.set_session_cookie(request, response, token, expires)
    cookies.clear_login_cookie(request, response)
    return response


def signed_out(request: Request, cookies: Cookies) -> Response:
    """Back to the login page saying so, the session cookie removed (the service has ended the session itself)."""
    response = RedirectResponse("/ui/login?reason=logged_out", status_code=303)
    cookies.clear_session_cookie(request, response)
    return response
