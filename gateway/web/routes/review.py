"""Clerical review: the review pairs with their per-field levels (never the values), and the link / non-link decision."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from gateway import review
from gateway.db import MAX_OFFSET
from gateway.errors import GatewayError
from gateway.web.render import render
from gateway.web.routes.casework import source_labels
from gateway.web.session import GatewayDep, WebSession, form_action, page

router = APIRouter()

_PAGE = 20

#: What each comparison of ``linkage.compare.COMPARISONS`` compares, for staff.
FIELD_LABELS = {
    "name_family": "氏（漢字）",
    "name_given": "名（漢字）",
    "kana_family": "氏（カナ）",
    "kana_given": "名（カナ）",
    "demographic": "生年月日・性別",
    "address": "住所",
}


def _page(request: Request, gw: GatewayDep, session: WebSession, offset: int, *, status: int = 200,
          errors: dict[str, str] | None = None, pair_id: int | None = None, decision: str = "", reason: str = "",
          done: str = "") -> Response:
    pairs = review.review_pairs(gw, _PAGE, offset)
    return render(request, "review.html", session, status, pairs=pairs, offset=offset, page_size=_PAGE, labels=source_labels(gw),
                  field_labels=FIELD_LABELS, decisions=review.DECISIONS,
                  may_decide=gw.policy.may(session.user.role, "review.decide").allowed,
                  errors=errors or {}, error_pair=pair_id, decision=decision, reason=reason, done=done)


@router.get("/review")
def get_review(request: Request, gw: GatewayDep, session: Annotated[WebSession, Depends(page("review.read"))],
               offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0, done: str = "") -> Response:
    """The current run's review pairs, highest weight first, each with its latest decision."""
    return _page(request, gw, session, offset, done=done)


@router.post("/review/{pair_id}")
def post_decision(request: Request, gw: GatewayDep, session: Annotated[WebSession, Depends(form_action("review.decide"))],
                  pair_id: Annotated[int, Path(ge=1, le=MAX_OFFSET)], decision: Annotated[str, Form(max_length=16)] = "",
                  reason: Annotated[str, Form(max_length=4000)] = "", offset: Annotated[int, Form(ge=0)] = 0) -> Response:
    """Record a decision through ``gateway.review.decide_pair`` (logged; binding from the next run)."""
    errors: dict[str, str] = {}
    if decision not in review.DECISIONS:
        errors["decision"] = "「同一人物」か「別人」を選んでください。"
    if not reason.strip():
        errors["reason"] = "判定の理由を入力してください（監査のため必須です）。"
    if not errors:
        try:
            review.decide_pair(gw, session.user, pair_id, decision, reason)
        except GatewayError as exc:
            if exc.status == 404:
                raise
            errors["reason" if exc.code.startswith("reason") else "decision"] = exc.detail
    if errors:
        return _page(request, gw, session, offset, status=422, errors=errors, pair_id=pair_id, decision=decision, reason=reason)
    return RedirectResponse(f"/ui/review?offset={offset}&done={pair_id}#pair-{pair_id}", status_code=303)
