"""スクリーニング: flagged persons of the current run, each with the rules and data items that flagged them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from gateway import screening
from gateway.web.render import render
from gateway.web.routes.casework import source_labels
from gateway.web.session import GatewayDep, WebSession, page

router = APIRouter()


@router.get("/screening")
def get_screening(request: Request, gw: GatewayDep, session: Annotated[WebSession, Depends(page("persons.read"))]) -> Response:
    """The capped list (``gateway.screening.screen``; the view is in the audit log)."""
    listing = screening.screen(gw, session.user)
    return render(request, "screening.html", session, listing=listing, labels=source_labels(gw),
                  may_request=gw.policy.may(session.user.role, "reidentify.request").allowed,
                  may_record=gw.policy.may(session.user.role, "support.record").allowed)
