"""ケースワーカー: persons of the current run, and one person's linked records and timeline (経年変化)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from gateway import casework, support
from gateway.core import Gateway
from gateway.db import MAX_OFFSET
from gateway.web.render import render
from gateway.web.session import GatewayDep, WebSession, page

router = APIRouter()
Reader = Annotated[WebSession, Depends(page("persons.read"))]

_PAGE = 50
_PERSON_ID = re.compile(r"^P[0-9a-f]{16}$")


def source_labels(gw: Gateway) -> dict[str, str]:
    """Every source of the policy with its label (住民記録, 校務支援システム …)."""
    return {s: spec.label for n in gw.policy.document.networks.values() for s, spec in n.sources.items()}


@router.get("/persons")
def get_persons(request: Request, gw: GatewayDep, session: Reader, source: str = "",
                min_sources: Annotated[int, Query(ge=1, le=32)] = 1, offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
                person: str = "") -> Response:
    """Persons of the current run, filtered by source or by how many sources hold them; or jump to one person id."""
    labels = source_labels(gw)
    errors: dict[str, str] = {}
    wanted = person.strip()
    if wanted:
        if _PERSON_ID.match(wanted):
            return RedirectResponse(f"/ui/persons/{wanted}", status_code=303)
        errors["person"] = "人物 ID は P と 16 桁の英数字（例: P0123456789abcdef）です。"
    source = source if source in labels else ""
    listing = casework.list_persons(gw, source=source or None, min_sources=min_sources, limit=_PAGE, offset=offset)
    return render(request, "persons.html", session, listing=listing, labels=labels, source=source, min_sources=min_sources,
                  offset=offset, page_size=_PAGE, person=wanted, errors=errors)


@router.get("/persons/{person_id}")
def get_person(request: Request, gw: GatewayDep, session: Reader, person_id: str) -> Response:
    """One person: linked records per source with the attributes the role may see, and every submitted version."""
    found = casework.person(gw, person_id, session.user.role)
    history = casework.timeline(gw, person_id, session.user.role)
    by_source: dict[str, list[dict]] = {}
    for record in found["records"]:
        by_source.setdefault(record["source"], []).append(record)
    attributes = sorted({k for e in history["events"] for k in e["attributes"]})
    # Logged for the auditor, like the screening list: who looked at which person.
    gw.record(session.user.username, session.user.role, "persons.view",
              f"viewed: records={len(found['records'])} events={len(history['events'])}", target=person_id)
    may_support = gw.policy.may(session.user.role, "support.read").allowed
    return render(request, "person.html", session, person=found, by_source=by_source, events=history["events"],
                  attributes=attributes, labels=source_labels(gw),
                  may_request=gw.policy.may(session.user.role, "reidentify.request").allowed,
                  may_record=gw.policy.may(session.user.role, "support.record").allowed,
                  cases=support.list_cases(gw, person_id=person_id)["cases"] if may_support else [])
