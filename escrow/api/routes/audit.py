"""The escrow's audit log for auditors, as the JSON lines export that `tsunagu audit verify` checks (with its witnesses' cosignatures)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from escrow.api.deps import EscrowDep, require
from escrow.identity import User
from keys.witness import submit_all

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("/export", response_class=PlainTextResponse, name="audit.export")
def get_export(escrow: EscrowDep, user: Annotated[User, Depends(require("auditor"))]) -> PlainTextResponse:
    """Every entry, every signed checkpoint and the verifier key (JSON lines)."""
    escrow.record(user.username, "auditor", "audit.export", "exported")
    submit_all(escrow.audit, escrow.witness_folder)  # so the export ends with a witnessed checkpoint
    lines = escrow.audit.export(escrow.audit_vkey)
    return PlainTextResponse("\n".join(lines) + "\n", media_type="application/jsonl; charset=utf-8")
