"""The escrow's web UI application, mounted by the escrow at ``/ui``: the shared skeleton (:mod:`service.web.app`), its screens, its refusals as Japanese pages."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from escrow.errors import PageRefused
from escrow.service import Escrow
from escrow.web.render import render
from escrow.web.routes import audit, auth, requests, vault
from escrow.web.session import COOKIES, PageForbidden
from service.errors import Refusal
from service.web.app import new_ui


def create_web_app(escrow: Escrow) -> FastAPI:
    """The UI of ``escrow``, to be mounted at ``/ui``."""
    # Pages use only what is served from here (one script: the countdown); no page may be framed.
    app = new_ui("tsunagu escrow web UI", Path(__file__).with_name("static"), render, COOKIES)
    app.state.escrow = escrow
    for module in (auth, requests, vault, audit):
        app.include_router(module.router)

    @app.exception_handler(PageForbidden)
    async def _forbidden(request: Request, exc: PageForbidden) -> Response:
        session = getattr(request.state, "session", None)
        user = session.user if session else None
        await run_in_threadpool(escrow.refuse, user.username if user else "(未認証)", user.label if user else "-", "web.page",
                                PageRefused(exc.reason, exc.code), target=request.url.path[:100])
        return render(request, "error.html", session, 403, title="この画面は表示できません", message=exc.reason)

    # Every refusal raised below a route, by whatever module, is answered here (service.errors).
    @app.exception_handler(Refusal)
    async def _escrow_error(request: Request, exc: Refusal) -> Response:
        session = getattr(request.state, "session", None)
        if not exc.logged:
            user = session.user if session else None
            await run_in_threadpool(escrow.refuse, user.username if user else "(未認証)", user.label if user else "-", "web.page",
                                    exc, target=request.url.path[:100])
        return render(request, "error.html", session, exc.status,
                      title="この画面は表示できません" if exc.status == 403 else "処理できませんでした", message=exc.detail)

    return app
