"""The FastAPI application: routes under /api/v1, and every refusal answered in Japanese JSON and logged in the audit log."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from escrow.api.routes import audit, auth, requests, states, vault
from escrow.errors import EscrowError
from escrow.service import Escrow
from escrow.web.app import create_web_app

_HTTP_CODES = {404: ("not_found", "そのような URL はありません。"), 405: ("method_not_allowed", "この URL ではその操作はできません。")}


def create_app(escrow: Escrow) -> FastAPI:
    """The API of ``escrow``."""
    app = FastAPI(title="tsunagu escrow", version="1",
                  description="エスクロー（封緘された本人情報の開封）API。開封は承認済みの再識別申請に限ります。")
    app.state.escrow = escrow
    for module in (vault, auth, requests, states, audit):
        app.include_router(module.router, prefix="/api/v1")
    # The staff's pages: a mount, so they stay out of the API's OpenAPI document and render errors as HTML.
    app.mount("/ui", create_web_app(escrow))

    @app.exception_handler(EscrowError)
    async def _escrow_error(request: Request, exc: EscrowError) -> JSONResponse:
        return await _refuse(escrow, request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors()[:5])
        return await _refuse(escrow, request, EscrowError(422, "invalid_request", f"リクエストの形式が正しくありません（{where}）。"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, detail = _HTTP_CODES.get(exc.status_code, ("http_error", "リクエストを処理できません。"))
        return JSONResponse({"code": code, "detail": detail}, status_code=exc.status_code)

    return app


async def _refuse(escrow: Escrow, request: Request, exc: EscrowError) -> JSONResponse:
    """Log the refusal in the audit log unless the workflow already did, then answer it."""
    user = getattr(request.state, "user", None)
    action = request.scope["route"].name  # every route is named after its audit action
    target = str(request.path_params.get("request_id", ""))
    await run_in_threadpool(escrow.refuse, user.username if user else "(未認証)", user.label if user else "-", action, exc,
                            target=target if len(target) <= 100 and target.isprintable() else "（不正な申請 ID）")
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({"code": exc.code, "detail": exc.detail}, status_code=exc.status, headers=headers)
