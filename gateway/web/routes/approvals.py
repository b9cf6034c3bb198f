"""承認者: re-identification requests the gateway logged, to be approved or rejected at the escrow (never here)."""

from __future__ import annotations

from typing import Annotated, Any, Callable

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from gateway import audit_tools
from gateway.core import Gateway
from gateway.db import MAX_OFFSET
from gateway.web import requestlist
from gateway.web.escrow import escrow_url, request_states
from gateway.web.render import render
from gateway.web.session import GatewayDep, WebSession, page
from policy import LEGAL_BASES

router = APIRouter()


def purpose_labels(gw: Gateway) -> dict[str, str]:
    """Every purpose of use of the policy with its label (a purpose since removed shows by name)."""
    return {p.name: p.label for p in gw.policy.purposes()}


#: A request's status at the escrow, in words (``None``: the escrow could not be reached).
STATES = {"pending": "承認待ち", "approved": "承認済み（未受取）", "rejected": "却下", "released": "開示済み",
          "expired": "期限切れ（未受取）", "not_filed": "エスクローに未提出"}
_PAGE = 50


async def _filed(gw: Gateway) -> tuple[list[dict[str, Any]], dict[str, str] | None]:
    """Accepted requests of the gateway's (verified) log and each one's status at the escrow (asked 200 at a time)."""
    report = audit_tools.report(audit_tools.export_lines(gw), None)
    filed = [r for r in report["requests"] if r["gateway_outcome"].startswith("accepted")]
    states: dict[str, str] | None = {}
    for i in range(0, len(filed), 200):
        got = await run_in_threadpool(request_states, [r["request_id"] for r in filed[i:i + 200]])
        if got is None:
            states = None
            break
        states.update(got)
    return filed, states


def _status_of(states: dict[str, str] | None) -> Callable[[dict[str, Any]], str]:
    return lambda r: "unknown" if states is None else states.get(r["request_id"], "")


@router.get("/approvals")
async def get_approvals(request: Request, gw: GatewayDep, session: Annotated[WebSession, Depends(page("reidentify.approve"))],
                        status: str = "", purpose: str = "", q: Annotated[str, Query(max_length=64)] = "", sort: str = "new",
                        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> Response:
    """Requests in the gateway's (verified) audit log that it accepted, with their real status at the escrow, purpose and
    legal basis: filtered by status and purpose, searched (id, requester, case reference), sorted, paged."""
    filed, states = await _filed(gw)
    purposes = purpose_labels(gw)
    status = status if status in STATES else ""
    purpose = purpose if purpose in purposes else ""
    sort = sort if sort in requestlist.SORTS else "new"
    rows = requestlist.filtered(filed, status=status, purpose=purpose, q=q, sort=sort, status_of=_status_of(states))
    return render(request, "approvals.html", session, requests=rows[offset:offset + _PAGE], total=len(rows), all_count=len(filed),
                  purposes=purposes, legal_bases=LEGAL_BASES, escrow=escrow_url(), states=states, state_labels=STATES,
                  status=status, purpose=purpose, q=q, sort=sort, sorts=requestlist.SORTS, offset=offset, page_size=_PAGE)


@router.get("/approvals/export.{kind}")
async def get_approvals_export(gw: GatewayDep, session: Annotated[WebSession, Depends(page("reidentify.approve"))], kind: str,
                               status: str = "", purpose: str = "", q: Annotated[str, Query(max_length=64)] = "",
                               sort: str = "new") -> Response:
    """The filtered list (every page) as CSV (UTF-8 with BOM) or Excel, Japanese headers; the download is logged."""
    if kind not in ("csv", "xlsx"):
        return Response(status_code=404)
    filed, states = await _filed(gw)
    status_of = _status_of(states)
    rows = requestlist.filtered(filed, status=status if status in STATES else "", purpose=purpose, q=q,
                                sort=sort if sort in requestlist.SORTS else "new", status_of=status_of)
    await run_in_threadpool(gw.record, session.user.username, session.user.role, "approvals.export", f"{kind} rows={len(rows)}")
    return requestlist.export(rows, kind, "reidentification-requests", "再識別の申請",
                              status_label=lambda r: STATES.get(status_of(r), "エスクローに接続できません"),
                              purposes=purpose_labels(gw), legal_bases=LEGAL_BASES)
