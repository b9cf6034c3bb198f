"""The FastAPI application: routes under /api/v1, and every refusal answered in Japanese JSON.

A signed-in user's refusal is logged in the audit log under their name; an
unauthenticated one is counted and summarised (service.frontdoor.refusals).
"""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from escrow.api.routes import audit, auth, requests, states, users, vault
from escrow.errors import BodyRefused, EscrowError, InvalidRequest
from escrow.service import Escrow
from escrow.web.app import create_web_app
from service.frontdoor.limits import BodyLimits
from transparency.tlog_witness import Witness, submit_all
from service.witness_client import http_post
from service.witness_http import witness_router
from service.errors import Refusal

log = logging.getLogger("tsunagu.escrow")

#: Every body but a filing: logins, decisions, shares.
BODY_BYTES = 1024 * 1024
#: A filing carries the sealed records of the request (ciphertexts) and the gateway's evidence.
FILING_BYTES = 32 * 1024 * 1024

_HTTP_CODES = {404: ("not_found", "そのような URL はありません。"), 405: ("method_not_allowed", "この URL ではその操作はできません。")}


def create_app(escrow: Escrow) -> FastAPI:
    """The API of ``escrow``, and while it runs, its checkpoints sent to its witnesses every ``witness_interval_seconds``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        interval = escrow.settings.witness_interval_seconds
        thread = threading.Thread(target=_witness_loop, args=(escrow, interval, stop), name="witness", daemon=True)
        if interval:
            thread.start()
        try:
            yield
        finally:
            escrow.refusals.flush()  # the period's counts of unauthenticated refusals, as one audit entry
            stop.set()
            if interval:
                thread.join(timeout=30)

    app = FastAPI(title="tsunagu escrow", version="1", lifespan=lifespan,
                  description="エスクロー（封緘された本人情報の開封）API。開封は承認済みの再識別申請に限ります。")
    app.state.escrow = escrow
    for module in (vault, auth, requests, states, audit, users):
        app.include_router(module.router, prefix="/api/v1")
    app.include_router(users.lockouts, prefix="/api/v1")
    # The escrow witnesses the gateway's log (C2SP tlog-witness; the checkpoint's signature is the authentication).
    app.include_router(witness_router(lambda: Witness.open(escrow.witness_folder)), prefix="/api/v1")
    # The staff's pages: a mount, so they stay out of the API's OpenAPI document and render errors as HTML.
    app.mount("/ui", create_web_app(escrow))

    # Every refusal raised below a route, by whatever module, is answered here (service.errors).
    @app.exception_handler(Refusal)
    async def _escrow_error(request: Request, exc: Refusal) -> JSONResponse:
        return await _refuse(escrow, request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors()[:5])
        # A value error is one of our own checks (e.g. a control character in a filing field): its Japanese message says how to fix it.
        why = " ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {str(e.get('msg', '')).removeprefix('Value error, ')}"
                       for e in exc.errors()[:5] if e.get("type") == "value_error")
        return await _refuse(escrow, request, InvalidRequest(f"リクエストの形式が正しくありません（{where}）。{why}".strip()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, detail = _HTTP_CODES.get(exc.status_code, ("http_error", "リクエストを処理できません。"))
        return JSONResponse({"code": code, "detail": detail}, status_code=exc.status_code)

    # Outermost: no body reaches a parser before it is bounded in size and depth.
    app.add_middleware(BodyLimits, refuse=_door_refusal(escrow), default_bytes=BODY_BYTES,
                       path_bytes={"/api/v1/requests": FILING_BYTES})
    return app


def _door_refusal(escrow: Escrow):
    """The middleware's refusals: counted like any unauthenticated refusal, answered in the escrow's JSON."""

    def refuse(status: int, code: str, detail: str, scope: dict):
        async def answer(scope: dict, receive, send) -> None:
            escrow.refuse_anonymous("http.body", BodyRefused(status, code, detail))
            await JSONResponse({"code": code, "detail": detail}, status_code=status)(scope, receive, send)

        return answer

    return refuse
def _witness_loop(escrow: Escrow, interval: float, stop: threading.Event) -> None:
    # Witnessed often, an operator's rewrite of already-cosigned history cannot be cosigned again.
    while not stop.wait(interval):
        try:
            submit_all(escrow.audit, escrow.witness_folder, http_post())
        except Exception:  # noqa: BLE001
            log.exception("witness submission failed")


async def _refuse(escrow: Escrow, request: Request, exc: EscrowError) -> JSONResponse:
    """Log the refusal in the audit log unless the workflow already did, then answer it."""
    user = getattr(request.state, "user", None)
    route = request.scope.get("route")
    action = route.name if route is not None else "http"  # every route is named after its audit action
    target = str(request.path_params.get("request_id", ""))
    if user is None:
        # Nobody signed in: counted and summarised, never one signed entry per request (anyone could grow the log).
        escrow.refuse_anonymous(action, exc)
    else:
        await run_in_threadpool(escrow.refuse, user.username, user.label, action, exc,
                                target=target if len(target) <= 100 and target.isprintable() else "（不正な申請 ID）")
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({"code": exc.code, "detail": exc.detail}, status_code=exc.status, headers=headers)
