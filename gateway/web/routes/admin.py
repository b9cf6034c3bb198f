"""管理者ダッシュボード: agents and their last submission, recent submissions and refusals, linkage runs; start a run."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from gateway import screening
from gateway.agents import last_submissions, list_agents, recent_refusals, recent_submissions
from gateway.link import request_manual_run, runs
from gateway.web.render import render
from gateway.web.routes.casework import source_labels
from gateway.web.session import GatewayDep, WebSession, form_action, page

router = APIRouter()

_RECENT = 20


@router.get("/admin")
def get_dashboard(request: Request, gw: GatewayDep, session: Annotated[WebSession, Depends(page("submissions.read"))],
                  started: bool = False) -> Response:
    """The dashboard; each panel only for a role holding its permission (as the API's routes)."""
    role = session.user.role
    submissions, events = recent_submissions(gw, _RECENT), recent_refusals(gw, _RECENT)
    last = last_submissions(gw)
    agents = [{**a, "last_submission": last.get(a["agent_id"])} for a in list_agents(gw)] if gw.policy.may(role, "agents.read") else None
    return render(request, "admin.html", session, submissions=submissions, events=events, agents=agents,
                  runs=runs(gw, 10) if gw.policy.may(role, "runs.read") else None,
                  may_start=gw.policy.may(role, "runs.start").allowed, started=started, labels=source_labels(gw),
                  rule_problems=screening.rule_report(gw) if gw.policy.may(role, "runs.start").allowed else None)


@router.post("/admin/runs")
def post_run(gw: GatewayDep, request: Request, session: Annotated[WebSession, Depends(form_action("runs.start"))]) -> Response:
    """Ask for a linkage run now, as ``POST /api/v1/runs`` does (the request is stored, so it is never lost)."""
    request_manual_run(gw, getattr(request.app.state, "jobs", None), f"web:{session.user.username}",
                       getattr(request.app.state, "runs", None))
    return RedirectResponse("/ui/admin?started=true", status_code=303)
