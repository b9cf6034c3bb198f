"""Look up which person a record token belongs to."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from gateway import casework
from gateway.api.deps import GatewayDep, require
from gateway.identity import User
from service.api import Answer

router = APIRouter(prefix="/records", tags=["persons"])


class RecordPerson(Answer):
    """The person one record belongs to in the current run."""

    source: str
    token: str
    person_id: str | None
    run_id: int | None


@router.get("/{source}/{token}", response_model=RecordPerson)
def get_record(gw: GatewayDep, user: Annotated[User, Depends(require("persons.read"))], source: str, token: str) -> dict[str, Any]:
    """The current person of one record (the look-up is logged for the auditor)."""
    found = casework.record_person(gw, source, token)
    gw.record(user.username, user.role, "records.view", f"viewed: person={found.get('person_id', '')}", target=f"{source}:{token}")
    return found
