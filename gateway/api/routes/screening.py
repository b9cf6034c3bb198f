"""The screening list: flagged persons of the current run with the rules and data items that flagged them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from gateway import screening
from gateway.api.deps import GatewayDep, require
from gateway.identity import User

router = APIRouter(prefix="/screening", tags=["screening"])


@router.get("")
def get_screening(gw: GatewayDep, user: Annotated[User, Depends(require("persons.read"))]) -> dict[str, Any]:
    """Flagged persons sorted by score and capped at the declared capacity; the view is logged."""
    return screening.screen(gw, user)
