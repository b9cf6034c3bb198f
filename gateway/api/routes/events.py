"""Refused requests and submissions (ingest events), for the administrator watching the agents."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from gateway import models
from gateway.api.deps import GatewayDep, require
from gateway.identity import User
from datetime import datetime
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
    e = models.ingest_events
    with gw.engine.connect() as conn:
        rows = conn.execute(select(e).order_by(e.c.id.desc()).limit(limit)).all()
    return [dict(r._mapping) for r in rows]
