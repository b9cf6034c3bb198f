"""The web UI application, mounted by the gateway at ``/ui``: the shared skeleton (:mod:`service.web.app`), the gateway's screens, its refusals as Japanese pages."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from gateway.core import Gateway
from gateway.web.escrow import escrow_origin
from gateway.web.render import render
from gateway.web.routes import (accounts, admin, approvals, audit, auth, casework, custodian, federation, reidentify,
                                review, screening, support)
from gateway.web.session import COOKIES, PageForbidden, PasswordChangeRequired
from service.errors import Refusal
from service.web.app import SECURITY_HEADERS, new_ui


def create_web_app(gw: Gateway) -> FastAPI:
    """The UI of ``gw``, to be mounted at ``/ui`` (``app.mount("/ui", create_web_app(gw))``)."""
    headers = dict(SECURITY_HEADERS)
    escrow = escrow_origin()
    if escrow:  # the filed page sends the package to the escrow's own page (a form, never a script)
        headers["Content-Security-Policy"] = headers["Content-Security-Policy"].replace("form-action 'self'", f"form-action 'self' {escrow}")
    app = new_ui("tsunagu web UI", Path(__file__).with_name("static"), render, COOKIES, headers)
    app.state.gateway = gw
    for module in (auth, accounts, admin, casework, screening, review, reidentify, approvals, custodian, audit, support,
                   federation):
        app.include_router(module.router)

    @app.exception_handler(PasswordChangeRequired)
    async def _password(request: Request, exc: PasswordChangeRequired) -> Response:
        return RedirectResponse("/ui/password?reason=temporary", status_code=303)

    @app.exception_handler(PageForbidden)
    async def _forbidden(request: Request, exc: PageForbidden) -> Response:
        await run_in_threadpool(gw.event, "web", 403, exc.code, exc.reason, path=f"{request.method} {request.url.path}"[:256])
        return render(request, "error.html", getattr(request.state, "session", None), 403,
                      title="この画面は表示できません", message=exc.reason)

    # Every refusal raised below a route, by whatever module, is answered here (service.errors).
    @app.exception_handler(Refusal)
    async def _gateway_error(request: Request, exc: Refusal) -> Response:
        if 400 <= exc.status < 500:
            await run_in_threadpool(gw.event, "web", exc.status, exc.code, exc.detail, path=f"{request.method} {request.url.path}"[:256])
        return render(request, "error.html", getattr(request.state, "session", None), exc.status,
                      title="この画面は表示できません" if exc.status == 403 else "処理できませんでした", message=exc.detail)

    return app
