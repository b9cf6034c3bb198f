"""The escrow's web UI application, mounted by the escrow at ``/ui``: pages, static files, refusals as Japanese pages."""

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

from escrow.errors import EscrowError
from escrow.service import Escrow
from escrow.web.render import render
from escrow.web.routes import audit, auth, requests, vault
from escrow.web.session import LoginRequired, PageForbidden, clear_session_cookie

_SECURITY_HEADERS = {
    # Pages use only what is served from here (one script: the countdown); no page may be framed.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_HTTP_MESSAGES = {404: "そのページはありません。", 405: "このページではその操作はできません。"}


def create_web_app(escrow: Escrow) -> FastAPI:
    """The UI of ``escrow``, to be mounted at ``/ui``."""
    app = FastAPI(title="tsunagu escrow web UI", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.escrow = escrow
    app.mount("/static", StaticFiles(directory=str(Path(__file__).with_name("static"))), name="static")
    for module in (auth, requests, vault, audit):
        app.include_router(module.router)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.update(_SECURITY_HEADERS)
        return response

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        query = {"reason": exc.reason, **({"next": exc.next_path} if exc.next_path else {})}
        response = RedirectResponse(f"/ui/login?{urlencode(query)}", status_code=303)
        clear_session_cookie(request, response)
        return response

    @app.exception_handler(PageForbidden)
    async def _forbidden(request: Request, exc: PageForbidden) -> Response:
        session = getattr(request.state, "session", None)
        user = session.user if session else None
        await run_in_threadpool(escrow.refuse, user.username if user else "(未認証)", user.label if user else "-", "web.page",
                                EscrowError(403, exc.code, exc.reason), target=request.url.path[:100])
        return render(request, "error.html", session, 403, title="この画面は表示できません", message=exc.reason)

    @app.exception_handler(EscrowError)
    async def _escrow_error(request: Request, exc: EscrowError) -> Response:
        session = getattr(request.state, "session", None)
        if not exc.logged:
            user = session.user if session else None
            await run_in_threadpool(escrow.refuse, user.username if user else "(未認証)", user.label if user else "-", "web.page",
                                    exc, target=request.url.path[:100])
        return render(request, "error.html", session, exc.status,
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
