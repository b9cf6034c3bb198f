"""Re-identification requests: the gateway checks and logs the request and returns the filing the caseworker sends to the escrow."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from gateway import reidentify
from gateway.api.deps import GatewayDep, get_token
from gateway.errors import GatewayError
from gateway.identity import User, authorize, user_for_token
from keys.filing import RequestFiling
from service.api import Answer

router = APIRouter(prefix="/reidentification", tags=["reidentification"])


class RequestIn(BaseModel):
    """What a caseworker asks for; an empty case reference or justification is refused (and logged) by the workflow."""

    person_id: str = Field(min_length=1, max_length=24)
    purpose: str = Field(min_length=1, max_length=100)
    case_ref: str = Field(default="", max_length=200)
    justification: str = Field(default="", max_length=8000)


def requester(gw: GatewayDep, token: Annotated[str, Depends(get_token)]) -> User:
    """The signed-in user, if the policy lets their role request; an expired session or a wrong role is logged in the audit log.

    An unknown token is only counted, like every unauthenticated refusal.
    """
    try:
        user = user_for_token(gw, token)
    except GatewayError as exc:
        if exc.code != "token_expired":
            # A token that never was a session: anyone can send one, so it is counted (gw.event), not signed.
            raise
        # A real session that expired (deleted at the next sign-in of anyone, so bounded): logged.
        raise reidentify.refuse(gw, "（未認証）", "-", exc) from None
    try:
        authorize(gw, user, "reidentify.request")
    except GatewayError as exc:
        raise reidentify.refuse(gw, user.username, user.role, exc) from None
    return user


class Filed(RequestFiling, Answer):
    """The request as filed with the escrow, with the gateway's audit evidence (entry, leaf index, proof, checkpoint)."""

    person_id: str


@router.post("", response_model=Filed)
def post_request(gw: GatewayDep, user: Annotated[User, Depends(requester)], body: RequestIn) -> dict[str, Any]:
    """Log the request (``reidentify.request``) and return the filing package with the evidence the escrow checks."""
    return reidentify.request(gw, user, body.person_id, body.purpose, body.case_ref, body.justification)
