"""The sign-in screen both UIs share: the form's checks, its nonce, the redirect after it, signing out.

The password check itself is the service's (``identity.login``, throttled
and logged there); what is the same in both UIs is the form around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Callable

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from service.errors import CredentialsMissing, FormExpired, Refusal
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


def form_errors(request: Request, cookies: Cookies, username: str, password: str, nonce: str) -> dict[str, Refusal]:
    """What is missing from a submitted login form, by field (``form``: the form's nonce is stale)."""
    errors: dict[str, Refusal] = {}
    if not username.strip():
        errors["username"] = CredentialsMissing("利用者名を入力してください。")
    if not password:
        errors["password"] = CredentialsMissing("パスワードを入力してください。")
    if not cookies.login_nonce_ok(request, nonce):
        errors["form"] = FormExpired("ログイン画面の有効期限が切れました。もう一度入力してください。")
    return errors


def error_status(errors: dict[str, Refusal]) -> int:
    """The answer's status: a stale form's (400) before a missing field's (422)."""
    return min(refused.status for refused in errors.values())


def login_page(request: Request, render: Render, cookies: Cookies, status: int = 200, *, username: str = "",
               next_path: str = "", notice: str = "", errors: dict[str, str] | None = None) -> Response:
    """The login form (``login.html``) with a fresh nonce in its cookie."""
    nonce = new_login_nonce()
    response = render(request, "login.html", None, status, username=username, next_path=next_path, notice=notice,
                      errors=errors or {}, nonce=nonce)
    cookies.set_login_cookie(request, response, nonce)
    return response


def add_login_form(router: APIRouter, render: Render, cookies: Cookies, reasons: dict[str, str]) -> None:
    """Add ``GET /login`` to a UI's ``router``: the form, saying why the user landed here (``reason``, a key of ``reasons``)."""

    @router.get("/login")
    def get_login(request: Request, reason: str = "", next: str = "") -> Response:
        """The login form; ``reason`` explains why the user landed here (expired session, logged out …)."""
        return login_page(request, render, cookies, next_path=safe_next(next) if next else "", notice=reasons.get(reason, ""))


@dataclass(frozen=True, slots=True)
class LoginForm:
    """What the login form posts (the same four fields in both UIs)."""

    username: str
    password: str
    nonce: str
    next: str


def _login_form(username: Annotated[str, Form(max_length=64)] = "", password: Annotated[str, Form(max_length=1024)] = "",
                nonce: Annotated[str, Form(max_length=64)] = "", next: Annotated[str, Form(max_length=512)] = "") -> LoginForm:
    return LoginForm(username, password, nonce, next)


#: The posted login form, as a route parameter.
LoginFormDep = Annotated[LoginForm, Depends(_login_form)]

#: ``check(username, password)`` → ``(token, target, expires)``: the service's sign-in (throttled and logged
#: there) and the page to go to; raises the service's :class:`~service.errors.Refusal`.
SignIn = Callable[[str, str], tuple[str, str, datetime]]


async def sign_in_from_form(request: Request, render: Render, cookies: Cookies, form: LoginForm, check: SignIn) -> Response:
    """``POST /ui/login``: the form again if it is incomplete or stale, or the service refuses; else the session cookie and on."""
    errors = form_errors(request, cookies, form.username, form.password, form.nonce)
    if errors:
        return login_page(request, render, cookies, error_status(errors), username=form.username, next_path=form.next,
                          errors={field: refused.detail for field, refused in errors.items()})
    try:
        token, target, expires = await run_in_threadpool(check, form.username.strip(), form.password)
    except Refusal as exc:
        return login_page(request, render, cookies, exc.status, username=form.username, next_path=form.next, errors={"form": exc.detail})
    return signed_in(request, cookies, target, token, expires)


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
