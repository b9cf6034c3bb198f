"""The web UI application, mounted by the gateway at ``/ui``: pages, static files, and refusals rendered as Japanese pages."""

from __future__ import annotations

from pathlib import Path
from typing import Awaitable, Callable
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.core import Gateway
from gateway.errors import GatewayError
from gateway.web.escrow import escrow_origin
from gateway.web.render import render
from gateway.web.routes import (accounts, admin, approvals, audit, auth, casework, custodian, federation, reidentify,
                                review, screening, support)
from gateway.web.session import LoginRequired, PageForbidden, PasswordChangeRequired, clear_session_cookie

_SECURITY_HEADERS = {
    # Everything the pages use is served from here: no CDN, no inline script.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

_HTTP_MESSAGES = {404: "そのページはありません。", 405: "このページではその操作はできません。"}


def create_web_app(gw: Gateway) -> FastAPI:
    """The UI of ``gw``, to be mounted at ``/ui`` (``app.mount("/ui", create_web_app(gw))``)."""
    app = FastAPI(title="tsunagu web UI", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.gateway = gw
    app.mount("/static", StaticFiles(directory=str(Path(__file__).with_name("static"))), name="static")
    for module in (auth, accounts, admin, casework, screening, review, reidentify, approvals, custodian, audit, support,
                   federation):
        app.include_router(module.router)

    headers = dict(_SECURITY_HEADERS)
    escrow = escrow_origin()
    if escrow:  # the filed page sends the package to the escrow's own page (a form, never a script)
        headers["Content-Security-Policy"] = headers["Content-Security-Policy"].replace("form-action 'self'", f"form-action 'self' {escrow}")

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.update(headers)
        return response

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        query = {"reason": exc.reason, **({"next": exc.next_path} if exc.next_path else {})}
        response = RedirectResponse(f"/ui/login?{urlencode(query)}", status_code=303)
        clear_session_cookie(request, response)
        return response

    @app.exception_handler(PasswordChangeRequired)
    async def _password(request: Request, exc: PasswordChangeRequired) -> Response:
        return RedirectResponse("/ui/password?reason=temporary", status_code=303)

    @app.exception_handler(PageForbidden)
    async def _forbidden(request: Request, exc: PageForbidden) -> Response:
        await run_in_threadpool(gw.event, "web", 403, exc.code, exc.reason, path=f"{request.method} {request.url.path}"[:256])
        return render(request, "error.html", getattr(request.state, "session", None), 403,
                      title="この画面は表示できません", message=exc.reason)

    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> Response:
        if 400 <= exc.status < 500:
            await run_in_threadpool(gw.event, "web", exc.status, exc.code, exc.detail, path=f"{request.method} {request.url.path}"[:256])
        return render(request, "error.html", getattr(request.state, "session", None), exc.status,
                      title="この画面は表示できません" if exc.status == 403 else "処理できませんでした", message=exc.detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return render(request, "error.html", getattr(request.state, "session", None), exc.status_code,
                      title="処理できませんでした", message=_HTTP_MESSAGES.get(exc.status_code, "リクエストを処理できません。"))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return render(request, "error.html", getattr(request.state, "session", None), 422,
                      title="入力を確認してください", message="URL または入力の形式が正しくありません。")

    return app
