"""Signing in and out of the web UI (the form is :mod:`service.web.login`'s), and the start page that sends each role to its first screen."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from gateway.errors import GatewayError
from gateway.identity import login, logout
from gateway.web.render import landing, render
from gateway.web.session import COOKIES, AnyFormSession, GatewayDep, SessionDep
from service.web.login import REASONS, error_status, form_errors, login_page, safe_next, signed_in, signed_out

router = APIRouter()


@router.get("/login")
def get_login(request: Request, reason: str = "", next: str = "") -> Response:
    """The login form; ``reason`` explains why the user landed here (expired session, logged out …)."""
    return login_page(request, render, COOKIES, next_path=safe_next(next) if next else "", notice=REASONS.get(reason, ""))


@router.post("/login")
def post_login(request: Request, gw: GatewayDep, username: Annotated[str, Form(max_length=64)] = "",
               password: Annotated[str, Form(max_length=1024)] = "", nonce: Annotated[str, Form(max_length=64)] = "",
               next: Annotated[str, Form(max_length=512)] = "") -> Response:
    """Check the password through the gateway's login and put the session token in the cookie."""
    errors = form_errors(request, COOKIES, username, password, nonce)
    if errors:
        return login_page(request, render, COOKIES, error_status(errors), username=username, next_path=next, errors=errors)
    try:
        token, user, expires = login(gw, username.strip(), password, address=request.client.host if request.client else None)
    except GatewayError as exc:
        gw.event("web", exc.status, exc.code, exc.detail, path="POST /ui/login")
        return login_page(request, render, COOKIES, exc.status, username=username, next_path=next, errors={"form": exc.detail})
    # A temporary password (after an administrator's reset) opens only the password page.
    return signed_in(request, COOKIES, "/ui/password?reason=temporary" if user.must_change_password else safe_next(next),
                     token, expires)


@router.post("/logout")
def post_logout(request: Request, gw: GatewayDep, session: AnyFormSession) -> Response:
    """End the session (in the gateway, not only in the browser)."""
    logout(gw, session.token)
    return signed_out(request, COOKIES)


@router.get("/")
def get_home(request: Request, gw: GatewayDep, session: SessionDep) -> Response:
    """The first screen the user's role may open."""
    start = landing(gw, session.user.role)
    if start:
        return RedirectResponse(start, status_code=303)
    return render(request, "error.html", session, 200, title="利用できる画面がありません",
                  message="このロールに割り当てられた画面はありません。必要な権限は管理者に相談してください。")
