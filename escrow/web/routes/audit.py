"""監査: the escrow's audit log for auditors — its size and verifier key, and the export `tsunagu audit verify` checks."""

from __future__ import annotations

from itertools import islice
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from escrow.web.render import render
from escrow.web.session import EscrowDep, WebSession, page
from keys.audit import export_lines

router = APIRouter()


@router.get("/audit")
def get_audit(request: Request, escrow: EscrowDep, session: Annotated[WebSession, Depends(page("auditor"))]) -> Response:
    """How many entries the log holds, its verifier key, and the export link."""
    return render(request, "audit.html", session, size=escrow.audit.size(), vkey=escrow.audit_vkey)


@router.get("/audit/export")
def get_export(escrow: EscrowDep, session: Annotated[WebSession, Depends(page("auditor"))]) -> Response:
    """Every entry, every signed checkpoint and the verifier key (JSON lines), as ``GET /api/v1/audit/export``; logged."""
    escrow.record(session.user.username, "auditor", "audit.export", "exported (web)")
    store = escrow.audit
    size = store.size()  # the log only grows: its first ``size`` entries and checkpoints are a consistent snapshot
    lines = export_lines(store.origin, escrow.audit_vkey, islice(store.entries(), size), islice(store.checkpoints(), size), size)
    return Response("\n".join(lines) + "\n", media_type="application/jsonl; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="escrow-audit.jsonl"', "Cache-Control": "no-store"})
