"""Registered agents (registration itself is `tsunagu gateway agent register`, with the agent's public key file)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from gateway.agents import handover_source, list_agents, revoke_agent
from gateway.api.deps import GatewayDep, require
from gateway.identity import User

router = APIRouter(prefix="/agents", tags=["agents"])


class Revocation(BaseModel):
    """Why an agent is revoked."""

    reason: str = Field(min_length=1, max_length=200)


class Handover(BaseModel):
    """Which source to hand to the agent, and why (logged)."""

    source: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=200)


@router.get("")
def get_agents(gw: GatewayDep, _user: Annotated[User, Depends(require("agents.read"))]) -> list[dict[str, Any]]:
    """Every agent: network, sources, status."""
    return list_agents(gw)


@router.post("/{agent_id}/revoke")
def post_revoke(gw: GatewayDep, agent_id: str, body: Revocation,
                user: Annotated[User, Depends(require("agents.manage"))]) -> dict[str, str]:
    """Revoke an agent: its later submissions are refused."""
    revoke_agent(gw, agent_id, body.reason, actor=user.username)
    return {"agent_id": agent_id, "status": "revoked"}


@router.post("/{agent_id}/handover")
def post_handover(gw: GatewayDep, agent_id: str, body: Handover,
                  user: Annotated[User, Depends(require("agents.manage"))]) -> dict[str, str]:
    """Hand ``body.source`` over to ``agent_id``: only its snapshots of the source are accepted from now on (logged)."""
    return handover_source(gw, body.source, agent_id, body.reason, actor=user.username)
