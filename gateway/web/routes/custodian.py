"""鍵管理者: the escrow's seal status and unseal progress, and how to unseal — at the escrow, never through the gateway."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from gateway.web.escrow import escrow_status
from gateway.web.render import render
from gateway.web.session import WebSession, page

router = APIRouter()


@router.get("/custodian")
async def get_custodian(request: Request, session: Annotated[WebSession, Depends(page("escrow.unseal"))]) -> Response:
    """The status the escrow reports (read here, server-side) and the unseal instructions."""
    found = await run_in_threadpool(escrow_status)
    return render(request, "custodian.html", session, escrow=found)
