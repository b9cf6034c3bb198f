"""The escrow's audit log for auditors, as the JSON lines export that `tsunagu audit verify` checks (with its witnesses' cosignatures)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from escrow.api.deps import EscrowDep, require
from escrow.identity import User
from service.witness_client import http_post
from transparency.tlog_witness import witnessed_export

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("/export", response_class=PlainTextResponse, name="audit.export")
def get_export(escrow: EscrowDep, user: Annotated[User, Depends(require("auditor"))]) -> PlainTextResponse:
    """Every entry, every signed checkpoint and the verifier key (JSON lines)."""
    escrow.record(user.username, "auditor", "audit.export", "exported")
    # After the escrow's witnesses cosigned its latest checkpoint, so the export ends witnessed.
    lines = witnessed_export(escrow.audit, escrow.audit_vkey, escrow.witness_folder, http_post())
    return PlainTextResponse("\n".join(lines) + "\n", media_type="application/jsonl; charset=utf-8")
