"""承認者: re-identification requests the gateway logged, to be approved or rejected at the escrow (never here)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from gateway import audit_tools
from gateway.core import Gateway
from gateway.web.escrow import escrow_url, request_states
from gateway.web.render import render
from gateway.web.session import GatewayDep, WebSession, page
from policy import LEGAL_BASES

router = APIRouter()


def purpose_labels(gw: Gateway) -> dict[str, str]:
    """Every purpose of use of the policy with its label (a purpose since removed shows by name)."""
    return {p.name: p.label for p in gw.policy.purposes()}


@router.get("/approvals")
async def get_approvals(request: Request, gw: GatewayDep, session: Annotated[WebSession, Depends(page("reidentify.approve"))]) -> Response:
    """Requests in the gateway's (verified) audit log that it accepted, newest first, with purpose and legal basis."""
    report = audit_tools.report(audit_tools.export_lines(gw), None)
    filed = [r for r in report["requests"] if r["gateway_outcome"].startswith("accepted")]
    filed.reverse()
    states = await run_in_threadpool(request_states, [r["request_id"] for r in filed[:200]])
    return render(request, "approvals.html", session, requests=filed, purposes=purpose_labels(gw), legal_bases=LEGAL_BASES,
                  escrow=escrow_url(), states=states)
