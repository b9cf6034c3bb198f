"""The screening list: flagged persons of the current run with the rules and data items that flagged them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from gateway import screening
from gateway.api.deps import GatewayDep, require
from gateway.identity import User
from service.api import Answer

router = APIRouter(prefix="/screening", tags=["screening"])


class ScreeningList(Answer):
    """The flagged persons of a run, by score, capped at the declared capacity; ``left_out`` counts those cut off."""

    run_id: int
    capacity: int
    flagged: int
    left_out: int
    entries: list[dict[str, Any]]


@router.get("", response_model=ScreeningList)
def get_screening(gw: GatewayDep, user: Annotated[User, Depends(require("persons.read"))]) -> dict[str, Any]:
    """Flagged persons sorted by score and capped at the declared capacity; the view is logged."""
    return screening.screen(gw, user)
