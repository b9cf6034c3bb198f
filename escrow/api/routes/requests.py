"""Re-identification requests: file (caseworker), approve or reject (approver), release once (the requester), list."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from escrow import reidentification
from escrow.api.deps import EscrowDep, require
from escrow.errors import NotRequester
from escrow.identity import User
from keys.filing import FilingEnvelope, RequestFields
from service.api import Answer

router = APIRouter(prefix="/requests", tags=["requests"])

_READERS = ("approver", "auditor", "admin", "caseworker")


class Decision(BaseModel):
    """An approver's reason (kept with the decision in the escrow's store, not in the audit log)."""

    reason: str = Field(default="", max_length=2000)


class RequestOut(RequestFields, Answer):
    """A re-identification request: who asked, why, under which legal basis, its approvals and state (times ISO 8601, UTC)."""

    approvals: int
    status: str
    created_at: str
    approved_at: str | None
    release_expires_at: str | None
    closed_at: str | None
    released_at: str | None
    records: list[Any]


class Released(Answer):
    """The opened records of an approved request, shown to the requester once."""

    request_id: str
    released_at: str | None
    records: list[Any]


@router.post("", status_code=201, name="reidentify.request", response_model=RequestOut)
def post_request(escrow: EscrowDep, user: Annotated[User, Depends(require("caseworker"))],
                 body: FilingEnvelope) -> dict[str, Any]:
    """File a request the gateway has logged and signed (the ``filing`` of its answer); it waits for ``approvals_required`` approvers."""
    return reidentification.file_signed(escrow, user, body.model_dump())


@router.get("", name="reidentify.list", response_model=list[RequestOut])
def get_requests(escrow: EscrowDep, user: Annotated[User, Depends(require(*_READERS))]) -> list[dict[str, Any]]:
    """Every request (a caseworker sees their own): who, when, why, decisions and outcome."""
    return reidentification.list_requests(escrow, None if _sees_all(user) else user.username)


@router.get("/{request_id}", name="reidentify.read", response_model=RequestOut)
def get_request(escrow: EscrowDep, user: Annotated[User, Depends(require(*_READERS))], request_id: str) -> dict[str, Any]:
    """One request."""
    found = reidentification.describe(escrow, request_id)
    if not _sees_all(user) and found["requester"] != user.username:
        raise NotRequester("ケースワーカーが見られるのは自分の申請だけです。")
    return found


@router.post("/{request_id}/approve", name="reidentify.approve", response_model=RequestOut)
def post_approve(escrow: EscrowDep, user: Annotated[User, Depends(require("approver"))], request_id: str,
                 body: Decision | None = None) -> dict[str, Any]:
    """Approve (never one's own request)."""
    return reidentification.decide(escrow, user, request_id, True, body.reason if body else "")


@router.post("/{request_id}/reject", name="reidentify.reject", response_model=RequestOut)
def post_reject(escrow: EscrowDep, user: Annotated[User, Depends(require("approver"))], request_id: str,
                body: Decision | None = None) -> dict[str, Any]:
    """Reject; the request is closed."""
    return reidentification.decide(escrow, user, request_id, False, body.reason if body else "")


@router.post("/{request_id}/release", name="reidentify.release", response_model=Released)
def post_release(escrow: EscrowDep, user: Annotated[User, Depends(require("caseworker"))], request_id: str) -> dict[str, Any]:
    """Open the request's records, once, for the caseworker who filed it (logged before opening)."""
    return reidentification.release(escrow, user, request_id)


def _sees_all(user: User) -> bool:
    return bool(user.roles & {"approver", "auditor", "admin"})
