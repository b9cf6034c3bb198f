"""Where requests stand, by id, for the gateway's approval screen: status words only, no sign-in.

The gateway holds no escrow session (it must not), yet its approvers should see
whether a request it logged was filed here and how it ended. Request ids are
unguessable (``reid-`` and 64 random bits) and known only to the gateway and
the requester; the answer is one status word per id — never a name, a token,
a reason or a decision.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from escrow import db, reidentification
from escrow.api.deps import EscrowDep
from service.api import Answer

router = APIRouter(prefix="/request-states", tags=["requests"])


class StatesQuery(BaseModel):
    """The request ids to look up (as many as one page of the gateway's list shows)."""

    request_ids: list[str] = Field(max_length=200)


class States(Answer):
    """The state of each request asked about: its status at the escrow, or ``not_filed``."""

    states: dict[str, str]


@router.post("", name="reidentify.states", response_model=States)
def post_states(escrow: EscrowDep, body: StatesQuery) -> dict[str, Any]:
    """``{request_id: status}``: pending, approved, rejected, released, expired, or not_filed."""
    wanted = [i for i in body.request_ids if len(i) <= 100]
    known = db.filed_request_ids(escrow.engine, wanted)
    return {"states": {i: reidentification.describe(escrow, i)["status"] if i in known else "not_filed" for i in wanted}}
