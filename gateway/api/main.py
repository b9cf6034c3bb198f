"""The FastAPI application: routes, JSON errors for every 4xx and 5xx, and the background jobs' lifetime.

Every request gets a request id (``X-Request-ID``). Every 5xx — a refusal
the gateway raises, a database that is down, a full disk, a bug — is a JSON
body ``{"error", "detail", "request_id"}`` with a Japanese reason, and is
written with its request id (and traceback) to the gateway's log file, so
the id an agent or a browser shows finds the entry.
"""

from __future__ import annotations

import errno
import logging
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.api.routes import agents, auth, events, exports, health, persons, records, retention, review, runs, submissions, users
from gateway.api.routes import audit, decisions, reidentification, screening
from gateway.api.routes import evaluation, returns, support
from gateway.core import Gateway
from gateway.federation.api import router as federation_router
from gateway.federation.protocol import MAX_MESSAGE_BYTES
from gateway.link import ServerRuns
from gateway.scheduler import Jobs
from gateway.web import create_web_app
from service.frontdoor.limits import BodyLimits
from transparency.tlog_witness import Witness
from service.witness_http import witness_router
from service.errors import Refusal

log = logging.getLogger("tsunagu.gateway.api")

_HTTP_CODES = {404: ("not_found", "そのような URL はありません。"), 405: ("method_not_allowed", "この URL ではその操作はできません。")}


def create_app(gw: Gateway, *, jobs: bool = True) -> FastAPI:
    """The API of ``gw``; with ``jobs`` the scheduler (linkage, retention, drop folder) runs alongside."""

    web = create_web_app(gw)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler = Jobs(gw) if jobs else None
        # Without a scheduler a "run now" starts its run here, bound to this server all the same (gateway.link.ServerRuns).
        bound = ServerRuns(gw)
        # The mounted UI is an app of its own: its routes read these from its state, not from this app's.
        for state in (app.state, web.state):
            state.jobs, state.runs = scheduler, bound
        if scheduler:
            scheduler.start()
        try:
            yield
        finally:
            if scheduler:
                scheduler.shutdown()
            bound.shutdown()
            gw.refusals.flush()

    app = FastAPI(title="tsunagu gateway", version="1", lifespan=lifespan,
                  description="こどもデータ連携ゲートウェイ API（仮名化データのみ）")
    app.state.gateway = gw
    for module in (health, auth, users, agents, submissions, events, runs, persons, records, review, exports, retention,
                   screening, decisions, reidentification, audit, support, evaluation, returns):
        app.include_router(module.router, prefix="/api/v1")
    app.include_router(users.lockouts, prefix="/api/v1")
    app.include_router(federation_router, prefix="/api/v1")
    # The gateway witnesses the escrow's log (C2SP tlog-witness; the checkpoint's signature is the authentication).
    app.include_router(witness_router(lambda: Witness.open(gw.witness_folder)), prefix="/api/v1")
    app.mount("/ui", web)

    app.add_middleware(_RequestErrors, gw=gw)

    # Every refusal raised below a route, by whatever module, is answered here (service.errors).
    @app.exception_handler(Refusal)
    async def _gateway_error(request: Request, exc: Refusal) -> JSONResponse:
        return _refuse(gw, request, exc.status, exc.code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors()[:5])
        return _refuse(gw, request, 422, "invalid_request", f"リクエストの形式が正しくありません（{where}）。")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, detail = _HTTP_CODES.get(exc.status_code, ("http_error", "リクエストを処理できません。"))
        return _refuse(gw, request, exc.status_code, code, detail)

    # Outermost: no body reaches a parser (FastAPI's, json's, a form's) before it is bounded.
    app.add_middleware(BodyLimits, refuse=_door_refusal(gw), default_bytes=BODY_BYTES,
                       path_bytes={"/api/v1/submissions": gw.settings.max_submission_bytes,
                                   "/api/v1/audit/report": AUDIT_REPORT_BYTES,
                                   "/api/v1/federation/submissions": FEDERATION_BYTES,
                                   "/api/v1/federation/peer/": FEDERATION_BYTES})
    return app


#: Every body but submissions and federation messages: forms, logins, queries, filings.
BODY_BYTES = 1024 * 1024
#: An auditor's report request carries the escrow's whole export.
AUDIT_REPORT_BYTES = 256 * 1024 * 1024
#: A federation message or the My Number agent's federation encodings.
FEDERATION_BYTES = MAX_MESSAGE_BYTES


def _door_refusal(gw: Gateway):
    """The middleware's refusals, answered and counted like every other refusal."""

    def refuse(status: int, code: str, detail: str, scope: dict):
        async def answer(scope: dict, receive, send) -> None:
            path = f"{scope.get('method', '')} {scope.get('path', '')}"[:256]
            await run_in_threadpool(gw.event, "api", status, code, detail, path=path)
            await JSONResponse({"error": code, "detail": detail}, status_code=status)(scope, receive, send)

        return answer

    return refuse


def _refuse(gw: Gateway, request: Request, status: int, code: str, detail: str) -> JSONResponse:
    # Submission refusals are logged by ingest itself, with the agent and sequence.
    request_id = request.scope.get("request_id", "")
    if status >= 500:
        log.error("%s %s → %s %s: %s [request %s]", request.method, request.url.path, status, code, detail, request_id)
        return JSONResponse({"error": code, "detail": detail, "request_id": request_id}, status_code=status)
    if not getattr(request.state, "event_logged", False):
        try:
            gw.event("api", status, code, detail, path=f"{request.method} {request.url.path}"[:256])
        except Exception as exc:  # noqa: BLE001 - the refusal still goes out when its log row cannot be written
            log.error("refusal %s %s not stored in ingest_events (%s) [request %s]", status, code, type(exc).__name__, request_id)
    return JSONResponse({"error": code, "detail": detail, "request_id": request_id}, status_code=status)


def failure_reason(exc: BaseException) -> tuple[int, str, str]:
    """(status, code, Japanese reason) for an exception no route handled: a database down, a full disk, or a bug."""
    text = str(exc).lower()
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC or "database or disk is full" in text or "no space left" in text:
        return 503, "disk_full", "ゲートウェイのディスクがいっぱいで書き込めません。空きを作ってから、もう一度送ってください（提出は送信待ちに残ります）。"
    if isinstance(exc, (OperationalError, InterfaceError)) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return 503, "database_unavailable", "ゲートウェイのデータベースに接続できません。しばらくしてからもう一度試してください（提出は送信待ちに残ります）。"
    return 500, "internal_error", "ゲートウェイの内部で問題が起きました。問い合わせ番号を添えて管理者に連絡してください。"


class _RequestErrors:
    """Pure ASGI middleware: a request id for every request, and a JSON 5xx (logged) for any exception left unhandled."""

    def __init__(self, app: Any, gw: Gateway) -> None:
        self.app = app
        self.gw = gw

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        scope["request_id"] = request_id
        started = False

        async def send_with_id(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode("ascii"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON answer and a log entry
            status, code, detail = failure_reason(exc)
            log.error("%s %s → %s %s [request %s]", scope.get("method"), scope.get("path"), status, code, request_id,
                      exc_info=(type(exc), exc, exc.__traceback__))
            if started:
                raise
            response = JSONResponse({"error": code, "detail": detail, "request_id": request_id}, status_code=status,
                                    headers={"x-request-id": request_id})
            await response(scope, receive, send)
