"""The escrow's audit log for auditors, as the JSON lines export that `tsunagu audit verify` checks."""

from __future__ import annotations

from itertools import islice
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from escrow.api.deps import EscrowDep, require
from escrow.identity import User
from keys.audit import export_lines

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("/export", response_class=PlainTextResponse, name="audit.export")
def get_export(escrow: EscrowDep, user: Annotated[User, Depends(require("auditor"))]) -> PlainTextResponse:
    """Every entry, every signed checkpoint and the verifier key (JSON lines)."""
    escrow.record(user.username, "auditor", "audit.export", "exported")
    store = escrow.audit
    size = store.size()  # the log only grows: its first ``size`` entries and checkpoints are a consistent snapshot
    lines = export_lines(store.origin, escrow.audit_vkey, islice(store.entries(), size), islice(store.checkpoints(), size), size)
    return PlainTextResponse("\n".join(lines) + "\n", media_type="application/jsonl; charset=utf-8")
