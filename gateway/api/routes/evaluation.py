"""The evaluation of the screening (JSON), a person's risk index, and pooled counts with the prefecture."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from gateway.api.deps import GatewayDep, require
from gateway.errors import TooLarge
from gateway.evaluation import pooled, report
from gateway.identity import User
from service.api import Answer

router = APIRouter(tags=["evaluation"])
Reader = Annotated[User, Depends(require("evaluation.read"))]
Kind = Literal["snapshot", "month", "quarter", "fiscal_year"]


class ShareIn(BaseModel):
    """Share this town's suppressed counts with the prefecture's gateway (a configured federation peer)."""

    prefecture: str = Field(pattern=r"^[0-9]{6}$")
    period_kind: Kind = "fiscal_year"
    period: str | None = Field(default=None, max_length=16)


class Evaluation(Answer):
    """The screening's evaluation over periods: funnels (total, by period, by rule), reach, the human check, capacity, items, risk."""

    period_kind: str
    periods: list[Any]
    lists: int
    cases: int
    total: dict[str, Any]
    by_period: list[dict[str, Any]]
    by_rule: list[dict[str, Any]]
    reach: dict[str, Any]
    human_check: dict[str, Any]
    capacity: dict[str, Any]
    items: list[dict[str, Any]]
    associations: list[dict[str, Any]]
    risk: dict[str, Any]


class Contribution(Answer):
    """What one item adds to a person's risk index."""

    item: str
    weight: float


class PersonIndex(Answer):
    """A person's risk index, the model's intercept, the periods it was fitted on and each item's contribution."""

    person_id: str
    index: float
    intercept: float
    fitted_on: list[Any]
    contributions: list[Contribution]


class PooledShare(Answer):
    """The counts shared; ``delivered`` False: the peer could not be reached, ``reason`` says why and ``bundle`` is to carry."""

    delivered: bool
    counts: Any


class Pooled(Answer):
    """The pooled evaluation counts of the towns that shared theirs."""

    towns: list[str]
    rule_labels: Any
    rules: Any
    total: Any
    items: Any


@router.get("/evaluation", response_model=Evaluation)
def get_evaluation(gw: GatewayDep, user: Reader, period: Kind = "month") -> dict[str, Any]:
    """Every figure: funnels, precision, recall proxy, capacity curve, items × difficulty types, human check, risk index."""
    result = report.evaluation(gw, period)
    gw.record(user.username, user.role, "evaluation.view", f"period={period}")
    return result


@router.get("/evaluation/persons/{person_id}/index", response_model=PersonIndex)
def get_person_index(gw: GatewayDep, user: Annotated[User, Depends(require("support.read"))], person_id: str) -> dict[str, Any]:
    """The person's risk index with the items that contribute (for ordering within the list; a person decides)."""
    return report.person_risk_index(gw, person_id)


@router.post("/evaluation/pooled/share", response_model=PooledShare)
def post_share(gw: GatewayDep, user: Annotated[User, Depends(require("pooled.share"))], body: ShareIn) -> dict[str, Any]:
    """Send the town's aggregate counts (small counts suppressed) to the prefecture; logged."""
    return pooled.share(gw, user, body.prefecture, body.period_kind, body.period)


@router.get("/evaluation/pooled", response_model=Pooled)
def get_pooled(gw: GatewayDep, user: Reader) -> dict[str, Any]:
    """The prefecture's pooled figures: sums of the towns' counts, and how many cells were suppressed."""
    gw.record(user.username, user.role, "pooled.view", "ok")
    return pooled.pooled(gw)


@router.post("/federation/peer/pooled", include_in_schema=False)
async def peer_pooled(request: Request, gw: GatewayDep) -> dict[str, Any]:
    """A town's signed counts (authenticated by the town gateway's federation signature)."""
    request.state.event_logged = True
    body = await request.body()
    if len(body) > 8 * 1024 * 1024:
        raise TooLarge("メッセージが大きすぎます。")
    return await run_in_threadpool(pooled.receive, gw, body, "federation")
