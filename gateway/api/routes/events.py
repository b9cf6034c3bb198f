"""Refused requests and submissions (ingest events), for the administrator watching the agents."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from gateway.agents import recent_refusals
from gateway.api.deps import GatewayDep, require
from gateway.identity import User
from service.api import Answer

router = APIRouter(prefix="/ingest-events", tags=["submissions"])


class IngestEvent(Answer):
    """A refusal at a door of the gateway (submissions, drop folder, federation, the API's front door)."""

    id: int
    at: datetime
    channel: str
    status: int
    code: str
    detail: str


@router.get("", response_model=list[IngestEvent])
def get_events(gw: GatewayDep, _user: Annotated[User, Depends(require("submissions.read"))],
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    """The latest refusals, newest first."""
    return recent_refusals(gw, limit)
