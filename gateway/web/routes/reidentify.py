"""再識別の申請: the request form (purpose with its legal basis, case reference, justification) and the filing package.

The gateway checks and logs the request (``gateway.reidentify.request``) and
hands back the filing package: sealed records and the audit evidence, no
plaintext. The caseworker files it at the escrow; the identity comes from the
escrow after approval, never through the gateway.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from gateway import reidentify
from gateway.core import Gateway
from gateway.errors import GatewayError, PersonIdMissing
from gateway.web.escrow import escrow_url
from gateway.web.render import JST, render
from gateway.web.session import AnyFormSession, GatewayDep, WebSession, page

router = APIRouter()

#: Which form field a refusal of ``gateway.reidentify`` is about (others are shown above the form).
_FIELD_OF = {
    "case_ref_required": "case_ref", "case_ref_invalid": "case_ref",
    "justification_required": "justification", "justification_too_long": "justification",
    "justification_invalid": "justification", "purpose_not_usable": "purpose", "purpose_invalid": "purpose", "person_not_found": "person_id",
}


def _purposes(gw: Gateway) -> list[dict]:
    today = datetime.now(JST).date()
    return [{"spec": p, "usable": gw.policy.may_use_purpose(p.name, today)} for p in gw.policy.purposes()]


def _form(request: Request, gw: Gateway, session: WebSession, status: int = 200, *, values: dict[str, str] | None = None,
          errors: dict[str, str] | None = None) -> Response:
    return render(request, "reidentify.html", session, status, purposes=_purposes(gw), values=values or {}, errors=errors or {})


@router.get("/reidentify")
def get_form(request: Request, gw: GatewayDep, session: Annotated[WebSession, Depends(page("reidentify.request"))],
             person: str = "") -> Response:
    """The request form, for the person given (from the person page or the screening list)."""
    return _form(request, gw, session, values={"person_id": person.strip()})


@router.post("/reidentify")
def post_request(request: Request, gw: GatewayDep, session: AnyFormSession,
                 person_id: Annotated[str, Form(max_length=24)] = "", purpose: Annotated[str, Form(max_length=100)] = "",
                 case_ref: Annotated[str, Form(max_length=200)] = "",
                 justification: Annotated[str, Form(max_length=8000)] = "") -> Response:
    """File the request through ``gateway.reidentify.request`` (which checks the role and logs every refusal)."""
    values = {"person_id": person_id.strip(), "purpose": purpose, "case_ref": case_ref, "justification": justification}
    if not values["person_id"]:
        refused = PersonIdMissing("人物 ID を入力してください。")
        return _form(request, gw, session, refused.status, values=values, errors={"person_id": refused.detail})
    try:
        package = reidentify.request(gw, session.user, values["person_id"], purpose, case_ref, justification)
    except GatewayError as exc:
        if exc.status == 403:
            raise
        return _form(request, gw, session, exc.status, values=values, errors={_FIELD_OF.get(exc.code, "form"): exc.detail})
    filing = package["filing"]
    spec = gw.policy.purpose(filing["manifest"]["purpose"])
    # The file is what the escrow takes (POST /api/v1/requests), as `tsunagu casework request` files it.
    data = json.dumps(filing, ensure_ascii=False, indent=2).encode("utf-8")
    return render(request, "reidentify_filed.html", session, package={**filing["manifest"], "person_id": package["person_id"]},
                  spec=spec,
                  download=f"data:application/json;base64,{base64.b64encode(data).decode()}",
                  filename=f"{package['request_id']}.json", escrow=escrow_url(),
                  filing_json=json.dumps(filing, ensure_ascii=False, separators=(",", ":")))
