"""The return path: signed lists of a department's own record tokens that caseworkers decided to act on."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, Field

from gateway import returnpath
from gateway.api.deps import GatewayDep, require
from gateway.identity import User
from service.api import Answer, file_answer

router = APIRouter(prefix="/returns", tags=["returns"])
Sender = Annotated[User, Depends(require("returns.send"))]


class ReturnIn(BaseModel):
    """Which cases, which department's source, what to do, under which purpose of use."""

    source: str = Field(min_length=1, max_length=64)
    action: str = Field(min_length=1, max_length=40)
    purpose: str = Field(min_length=1, max_length=64)
    case_ids: list[int] = Field(min_length=1, max_length=returnpath.MAX_RECORDS)


class ReturnOut(BaseModel):
    """A list sent (no tokens here; the signed file holds them)."""

    id: str
    source: str
    action: str
    purpose: str
    records: int
    content_sha256: str
    created_at: datetime
    created_by: str
    cases_without_record: list[int] = []


class VerifierKey(Answer):
    """The key departments check the signed lists with (a signed-note verifier key)."""

    vkey: str


@router.post("", response_model=ReturnOut)
def post_return(gw: GatewayDep, user: Sender, body: ReturnIn) -> dict[str, Any]:
    """Sign and store the list; logged."""
    return returnpath.create(gw, user, body.source, body.action, body.purpose, body.case_ids)


@router.get("", response_model=list[ReturnOut])
def get_returns(gw: GatewayDep, _user: Sender) -> list[dict[str, Any]]:
    """Every list sent, newest first."""
    return returnpath.list_lists(gw)


@router.get("/key", response_model=VerifierKey)
def get_key(gw: GatewayDep, _user: Sender) -> dict[str, str]:
    """The verifier key departments' agents check the lists with."""
    return {"vkey": returnpath.verifier_key(gw)}


@router.get("/{list_id}/file", response_class=Response, responses=file_answer("application/x-ndjson"))
def get_file(gw: GatewayDep, user: Sender, list_id: str) -> Response:
    """The signed list (JSON Lines) to carry to the department; the download is logged."""
    return Response(returnpath.signed_list(gw, user, list_id), media_type="application/x-ndjson",
                    headers={"Content-Disposition": f'attachment; filename="{list_id}.jsonl"'})
