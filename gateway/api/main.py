"""The FastAPI application: routes, JSON errors for every 4xx, and the background jobs' lifetime."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.api.routes import agents, auth, events, exports, health, persons, records, retention, review, runs, submissions, users
from gateway.api.routes import audit, decisions, reidentification, screening
from gateway.core import Gateway
from gateway.federation.api import router as federation_router
from gateway.errors import GatewayError
from gateway.scheduler import Jobs
from gateway.web import create_web_app

log = logging.getLogger("tsunagu.gateway.api")

_HTTP_CODES = {404: ("not_found", "そのような URL はありません。"), 405: ("method_not_allowed", "この URL ではその操作はできません。")}


def create_app(gw: Gateway, *, jobs: bool = True) -> FastAPI:
    """The API of ``gw``; with ``jobs`` the scheduler (linkage, retention, drop folder) runs alongside."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler = Jobs(gw) if jobs else None
        app.state.jobs = scheduler
        if scheduler:
            scheduler.start()
        try:
            yield
        finally:
            if scheduler:
                scheduler.shutdown()

    app = FastAPI(title="tsunagu gateway", version="1", lifespan=lifespan,
                  description="こどもデータ連携ゲートウェイ API（仮名化データのみ）")
    app.state.gateway = gw
    for module in (health, auth, users, agents, submissions, events, runs, persons, records, review, exports, retention,
                   screening, decisions, reidentification, audit):
        app.include_router(module.router, prefix="/api/v1")
    app.include_router(federation_router, prefix="/api/v1")
    app.mount("/ui", create_web_app(gw))

    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        return _refuse(gw, request, exc.status, exc.code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors()[:5])
        return _refuse(gw, request, 422, "invalid_request", f"リクエストの形式が正しくありません（{where}）。")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, detail = _HTTP_CODES.get(exc.status_code, ("http_error", "リクエストを処理できません。"))
        return _refuse(gw, request, exc.status_code, code, detail)

    return app


def _refuse(gw: Gateway, request: Request, status: int, code: str, detail: str) -> JSONResponse:
    # Submission refusals are logged by ingest itself, with the agent and sequence.
    if 400 <= status < 500 and not getattr(request.state, "event_logged", False):
        gw.event("api", status, code, detail, path=f"{request.method} {request.url.path}"[:256])
    return JSONResponse({"error": code, "detail": detail}, status_code=status)
