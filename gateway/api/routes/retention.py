"""Retention: run the purge now, and see past purges."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from gateway.api.deps import GatewayDep, require
from gateway.identity import User
from gateway.retention import purge, purges
from service.api import Answer

router = APIRouter(prefix="/retention", tags=["retention"])
Operator = Annotated[User, Depends(require("retention.run"))]


class PurgedSource(Answer):
    """What one purge removed from one source: current records and history versions, and their record tokens."""

    source: str
    retention_days: int
    records_removed: int
    history_removed: int
    tokens: list[str]


class Purge(PurgedSource):
    """A past purge of one source."""

    id: int
    at: datetime


@router.post("/purge", response_model=list[PurgedSource])
def post_purge(gw: GatewayDep, user: Operator) -> list[dict[str, Any]]:
    """Remove what is past its source's retention period now."""
    return purge(gw, actor=user.username)


@router.get("/purges", response_model=list[Purge])
def get_purges(gw: GatewayDep, _user: Operator) -> list[dict[str, Any]]:
    """Past purges (counts and record tokens), newest first."""
    return purges(gw)
