"""Signing in and out of the web UI (the form is :mod:`service.web.login`'s), and the start page that sends each role to its first screen."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from gateway.errors import GatewayError
from gateway.identity import login, logout
from gateway.web.render import landing, render
from gateway.web.session import COOKIES, AnyFormSession, GatewayDep, SessionDep
from service.web.login import REASONS, LoginFormDep, add_login_form, safe_next, sign_in_from_form, signed_out

router = APIRouter()


add_login_form(router, render, COOKIES, REASONS)


@router.post("/login")
async def post_login(request: Request, gw: GatewayDep, form: LoginFormDep) -> Response:
    """Check the password through the gateway's login and put the session token in the cookie."""
    def check(username: str, password: str) -> tuple[str, str, datetime]:
        try:
            token, user, expires = login(gw, username, password, address=request.client.host if request.client else None)
        except GatewayError as exc:
            gw.event("web", exc.status, exc.code, exc.detail, path="POST /ui/login")
            raise
        # A temporary password (after an administrator's reset) opens only the password page.
        return token, "/ui/password?reason=temporary" if user.must_change_password else safe_next(form.next), expires

    return await sign_in_from_form(request, render, COOKIES, form, check)


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
