"""Retention: run the purge now, and see past purges."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from gateway.api.deps import GatewayDep, require
from gateway.identity import User
from gateway.retention import purge, purges

router = APIRouter(prefix="/retention", tags=["retention"])
Operator = Annotated[User, Depends(require("retention.run"))]


@router.post("/purge")
def post_purge(gw: GatewayDep, user: Operator) -> list[dict[str, Any]]:
    """Remove what is past its source's retention period now."""
    return purge(gw, actor=user.username)


@router.get("/purges")
def get_purges(gw: GatewayDep, _user: Operator) -> list[dict[str, Any]]:
    """Past purges (counts and record tokens), newest first."""
    return purges(gw)
