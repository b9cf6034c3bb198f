"""GET /health: is the gateway up (the only route without authentication)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from gateway.api.deps import GatewayDep

router = APIRouter(tags=["health"])


@router.get("/health")
def health(gw: GatewayDep) -> dict[str, str]:
    """The gateway answers and its database too."""
    with gw.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return {"status": "ok"}
