"""Sealed or not: status (no sign-in), unseal with one custodian's share at a time, seal again."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from escrow.api.deps import EscrowDep, require
from escrow.identity import User
from escrow.vault import Progress

router = APIRouter(tags=["vault"])


class UnsealRequest(BaseModel):
    """One custodian's share file (its text, as written by ``tsunagu keys init``) and its passphrase."""

    share: str = Field(min_length=1, max_length=65536)
    passphrase: str = Field(min_length=1, max_length=1024)


@router.get("/status", name="escrow.status", response_model=Progress)
def get_status(escrow: EscrowDep) -> dict[str, Any]:
    """Sealed or unsealed, and how many of the k shares are in (no sign-in needed)."""
    return escrow.vault.status().to_json()


@router.post("/unseal", name="escrow.unseal", response_model=Progress)
def post_unseal(escrow: EscrowDep, user: Annotated[User, Depends(require("custodian"))], body: UnsealRequest) -> dict[str, Any]:
    """Offer one share; with the k-th share the escrow key is rebuilt in memory."""
    progress = escrow.offer_share(user.username, body.share.encode("utf-8"), body.passphrase)
    return progress.to_json()


@router.post("/seal", name="escrow.seal", response_model=Progress)
def post_seal(escrow: EscrowDep, user: Annotated[User, Depends(require("custodian", "admin"))]) -> dict[str, Any]:
    """Drop the escrow key and any offered shares from memory."""
    return escrow.seal(user.username, user.roles).to_json()
