"""Pairs for clerical review (the band below the match threshold, and ambiguous matches)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from gateway import casework
from gateway.api.deps import GatewayDep, require
from gateway.db import MAX_OFFSET
from gateway.identity import User
from gateway.api.routes.decisions import ReviewPairs

router = APIRouter(prefix="/review-pairs", tags=["review"])


@router.get("", response_model=ReviewPairs)
def get_review_pairs(gw: GatewayDep, _user: Annotated[User, Depends(require("review.read"))],
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                     offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> dict[str, Any]:
    """The current run's review pairs with per-field levels, the most useful decision first (the review queue's order)."""
    return casework.review_pairs(gw, limit, offset)
