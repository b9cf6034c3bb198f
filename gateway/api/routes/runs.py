"""Linkage runs: history and statistics; start one now."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from gateway import scheduler
from gateway.api.deps import GatewayDep, require
from gateway.identity import User
from gateway.link import request_manual_run, runs
from service.api import Answer

router = APIRouter(prefix="/runs", tags=["runs"])


class RunOut(Answer):
    """A linkage run with its statistics; ``current`` marks the one readers see."""

    id: int
    trigger: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    current: bool


class Pending(Answer):
    """The waiting run requests (count, oldest and newest time, the newest's trigger) and whether a run is going."""

    requests: int
    oldest: Any
    newest: Any
    trigger: str
    running: bool


class RunRequested(Answer):
    """A run was asked for."""

    status: str


@router.get("", response_model=list[RunOut])
def get_runs(gw: GatewayDep, _user: Annotated[User, Depends(require("runs.read"))],
             limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
    """The latest runs with statistics, newest first; ``current`` marks the one readers see."""
    return runs(gw, limit)


@router.get("/pending", response_model=Pending)
def get_pending(gw: GatewayDep, request: Request, _user: Annotated[User, Depends(require("runs.read"))]) -> dict[str, Any]:
    """Whether a run is due: the waiting run requests (data changed since the last run) and whether one is going."""
    return scheduler.pending(gw, getattr(request.app.state, "jobs", None))


@router.post("", status_code=202, response_model=RunRequested)
def post_run(gw: GatewayDep, request: Request, user: Annotated[User, Depends(require("runs.start"))]) -> dict[str, str]:
    """Ask for a linkage run now: the request is stored first (GET /runs/pending shows it, GET /runs the run's progress).

    A request made while a run goes on causes the next run; one made just before the gateway stops is run after the
    next start (``gateway.link.request_manual_run``).
    """
    request_manual_run(gw, getattr(request.app.state, "jobs", None), f"api:{user.username}",
                       getattr(request.app.state, "runs", None))
    return {"status": "requested"}
