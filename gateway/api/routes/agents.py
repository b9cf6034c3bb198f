"""Registered agents (registration itself is `tsunagu gateway agent register`, with the agent's public key file)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from gateway.agents import handover_source, list_agents, revoke_agent
from gateway.api.deps import GatewayDep, require
from gateway.identity import User
from service.api import Answer

router = APIRouter(prefix="/agents", tags=["agents"])


class Revocation(BaseModel):
    """Why an agent is revoked."""

    reason: str = Field(min_length=1, max_length=200)


class Handover(BaseModel):
    """Which source to hand to the agent, and why (logged)."""

    source: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=200)


class AgentOut(Answer):
    """A registered agent: its key id, network, the sources it submits and its status."""

    agent_id: str
    signing_key_id: str
    network: str
    status: str
    sources: list[str]
    registered_at: datetime
    revoked_at: datetime | None


class Revoked(Answer):
    """The agent revoked."""

    agent_id: str
    status: str


class HandedOver(Answer):
    """The source, the agent that had it (``from``, empty if none) and the one that has it now (``to``)."""

    source: str
    previous: str = Field(alias="from")
    to: str


@router.get("", response_model=list[AgentOut])
def get_agents(gw: GatewayDep, _user: Annotated[User, Depends(require("agents.read"))]) -> list[dict[str, Any]]:
    """Every agent: network, sources, status."""
    return list_agents(gw)


@router.post("/{agent_id}/revoke", response_model=Revoked)
def post_revoke(gw: GatewayDep, agent_id: str, body: Revocation,
                user: Annotated[User, Depends(require("agents.manage"))]) -> dict[str, str]:
    """Revoke an agent: its later submissions are refused."""
    revoke_agent(gw, agent_id, body.reason, actor=user.username)
    return {"agent_id": agent_id, "status": "revoked"}


@router.post("/{agent_id}/handover", response_model=HandedOver)
def post_handover(gw: GatewayDep, agent_id: str, body: Handover,
                  user: Annotated[User, Depends(require("agents.manage"))]) -> dict[str, str]:
    """Hand ``body.source`` over to ``agent_id``: only its snapshots of the source are accepted from now on (logged)."""
    return handover_source(gw, body.source, agent_id, body.reason, actor=user.username)
