"""The skeleton of both UIs' applications: static files, security headers, and the refusals every UI answers alike.

:func:`new_ui` makes the FastAPI app a service mounts at ``/ui``: its own
static files at ``/ui/static``, the shared style sheet at ``/ui/shared``,
security headers on every answer, a dead session sent to the login page,
and an unknown page or a malformed URL answered as a Japanese page. The
service adds its routers and the handlers for its own refusals (they log
to its own store).
"""

from __future__ import annotations

from pathlib import Path
from typing import Awaitable, Callable
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.web.login import Render
from service.web.session import Cookies, LoginRequired

#: Every page uses only what is served from its own origin; no page may be framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_HTTP_MESSAGES = {404: "そのページはありません。", 405: "このページではその操作はできません。"}
_SHARED_STATIC = Path(__file__).with_name("static")


def new_ui(title: str, static: Path, render: Render, cookies: Cookies, headers: dict[str, str] | None = None) -> FastAPI:
    """A UI app serving ``static`` and the shared style sheet, answering with ``headers`` (default :data:`SECURITY_HEADERS`)."""
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.mount("/shared", StaticFiles(directory=str(_SHARED_STATIC)), name="shared")
    answer_headers = dict(headers or SECURITY_HEADERS)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.update(answer_headers)
        return response

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        query = {"reason": exc.reason, **({"next": exc.next_path} if exc.next_path else {})}
        response = RedirectResponse(f"/ui/login?{urlencode(query)}", status_code=303)
        cookies.clear_session_cookie(request, response)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return render(request, "error.html", getattr(request.state, "session", None), exc.status_code,
                      title="処理できませんでした", message=_HTTP_MESSAGES.get(exc.status_code, "リクエストを処理できません。"))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return render(request, "error.html", getattr(request.state, "session", None), 422,
                      title="入力を確認してください", message="URL または入力の形式が正しくありません。")

    return app
