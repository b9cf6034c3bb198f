"""Clerical review decisions: link or keep apart two records; logged, and binding every later linkage run."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from gateway import review
from gateway.api.deps import GatewayDep, require
from gateway.db import MAX_OFFSET
from gateway.identity import User
from service.api import Answer

router = APIRouter(prefix="/review", tags=["review"])
Decider = Annotated[User, Depends(require("review.decide"))]


class DecisionIn(BaseModel):
    """A reviewer's decision and its reason (required)."""

    decision: Literal["link", "non_link"]
    reason: str = Field(max_length=2000)


class RecordRef(BaseModel):
    """One record, by source and record token."""

    source: str = Field(min_length=1, max_length=64)
    token: str = Field(min_length=1, max_length=128)


class PairDecisionIn(DecisionIn):
    """A decision on any two records (e.g. a record a caseworker sees wrongly linked into a person)."""

    a: RecordRef
    b: RecordRef


class ReviewPairs(Answer):
    """One page of the current run's review queue (``run_id`` None before the first run)."""

    run_id: int | None
    total: int
    pairs: list[dict[str, Any]]


class DecisionOut(Answer):
    """A reviewer's decision on two records, as recorded (it applies from the next run)."""

    id: int
    a: RecordRef
    b: RecordRef
    decision: str
    label: str
    decided_by: str
    decided_at: datetime
    review_pair_id: int | None


class DecisionList(Answer):
    """The recorded decisions, newest first."""

    decisions: list[DecisionOut]


@router.get("/pairs", response_model=ReviewPairs)
def get_pairs(gw: GatewayDep, _user: Annotated[User, Depends(require("review.read"))],
              limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> dict[str, Any]:
    """The current run's review pairs with per-field levels and labels (no values) and any decision taken."""
    return review.review_pairs(gw, limit, offset)


@router.post("/{pair_id}/decision", response_model=DecisionOut)
def post_decision(gw: GatewayDep, user: Decider, pair_id: Annotated[int, Path(ge=1, le=MAX_OFFSET)], body: DecisionIn) -> dict[str, Any]:
    """Decide a review pair."""
    return review.decide_pair(gw, user, pair_id, body.decision, body.reason)


@router.post("/decisions", response_model=DecisionOut)
def post_pair_decision(gw: GatewayDep, user: Decider, body: PairDecisionIn) -> dict[str, Any]:
    """Decide two records named by source and token."""
    return review.decide(gw, user, (body.a.source, body.a.token), (body.b.source, body.b.token), body.decision, body.reason)


@router.get("/decisions", response_model=DecisionList)
def get_decisions(gw: GatewayDep, _user: Annotated[User, Depends(require("review.read"))],
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> dict[str, Any]:
    """Every decision, newest first."""
    return review.list_decisions(gw, limit, offset)
