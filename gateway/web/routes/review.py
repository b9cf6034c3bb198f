"""Clerical review: pairs grouped with their rivals, side by side, why each is in review, the weight each field adds
(a waterfall, as Splink draws it), links to both persons, keyboard shortcuts; and the link / non-link decision."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from service import listing as exports
from gateway import review
from gateway.db import MAX_OFFSET
from gateway.errors import GatewayError, InvalidDecision, ReasonRequired, ReasonTooLong
from gateway.web.render import render
from gateway.web.routes.casework import source_labels
from gateway.web.session import GatewayDep, WebSession, form_action, page

router = APIRouter()

_PAGE = 20
_SORTS = review.GROUP_SORTS
_FILTERS = {"": "すべて", "undecided": "未判定のみ", "decided": "判定済みのみ"}

#: What each comparison of ``linkage.compare.COMPARISONS`` compares, for staff.
FIELD_LABELS = {
    "name_family": "氏（漢字）",
    "name_given": "名（漢字）",
    "kana_family": "氏（カナ）",
    "kana_given": "名（カナ）",
    "demographic": "生年月日・性別",
    "address": "住所",
}
_CHART_WIDTH, _LABEL_WIDTH, _ROW = 640, 150, 24


def waterfall_chart(steps: list[dict[str, Any]], weight: float) -> dict[str, Any]:
    """SVG geometry of a waterfall: one bar per step from its running start to its end, and the total (no inline styles)."""
    ends = [0.0, weight] + [s["start"] for s in steps] + [s["end"] for s in steps]
    low, high = min(ends), max(ends)
    span = (high - low) or 1.0
    width = _CHART_WIDTH - _LABEL_WIDTH - 70

    def x(value: float) -> float:
        return round(_LABEL_WIDTH + (value - low) / span * width, 1)

    bars = [{"y": i * _ROW, "x": min(x(s["start"]), x(s["end"])), "w": max(abs(x(s["end"]) - x(s["start"])), 1.0),
             "up": s["added"] >= 0, "label": s["field"], "added": s["added"], "text_x": max(x(s["start"]), x(s["end"])) + 4}
            for i, s in enumerate(steps)]
    total_y = len(steps) * _ROW
    return {"bars": bars, "zero": x(0.0), "total": {"y": total_y, "x": min(x(0.0), x(weight)), "w": max(abs(x(weight) - x(0.0)), 1.0),
                                                    "text_x": max(x(0.0), x(weight)) + 4},
            "height": total_y + _ROW + 4, "width": _CHART_WIDTH}


def _page(request: Request, gw: GatewayDep, session: WebSession, offset: int, *, status: int = 200,
          errors: dict[str, str] | None = None, pair_id: int | None = None, decision: str = "", reason: str = "",
          done: str = "", source: str = "", decided: str = "", sort: str = "gain", rivals: int = 0) -> Response:
    labels = source_labels(gw)
    source, decided, sort = _query(source, decided, sort, labels)
    groups = review.review_groups(gw, source=source, decided=decided, sort=sort, limit=_PAGE, offset=offset)
    for group in groups["groups"]:
        for pair in group["pairs"]:
            pair["chart"] = waterfall_chart(pair["waterfall"], pair["weight"])
    return render(request, "review.html", session, status, groups=groups, offset=offset, page_size=_PAGE, labels=labels,
                  field_labels=FIELD_LABELS, decisions=review.DECISIONS, sorts=_SORTS, filters=_FILTERS,
                  source=source, decided=decided, sort=sort,
                  may_decide=gw.policy.may(session.user.role, "review.decide").allowed,
                  errors=errors or {}, error_pair=pair_id, decision=decision, reason=reason, done=done, rivals=rivals)


def _query(source: str, decided: str, sort: str, labels: dict[str, str]) -> tuple[str, str, str]:
    return source if source in labels else "", decided if decided in _FILTERS else "", sort if sort in _SORTS else "gain"


#: Columns of the exported review list (one line per pair, grouped as on the screen).
EXPORT_HEADERS = ("確認の優先順", "グループ", "ペア番号", "記録Aのデータ元", "記録Aの記録トークン", "記録Aの人物ID", "記録Bのデータ元",
                  "記録Bの記録トークン", "記録Bの人物ID", "重み", "項目ごとの比較", "確認が必要な理由", "競合するペア", "判定")


@router.get("/review")
def get_review(request: Request, gw: GatewayDep, session: Annotated[WebSession, Depends(page("review.read"))],
               offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0, done: str = "", source: str = "", decided: str = "",
               sort: str = "gain", rivals: Annotated[int, Query(ge=0)] = 0) -> Response:
    """The current run's review pairs, grouped with their rivals, in the review queue's order (expected gain) unless
    another order is chosen, each with its latest decision."""
    return _page(request, gw, session, offset, done=done, source=source, decided=decided, sort=sort, rivals=rivals)


@router.get("/review/export.{kind}")
def get_review_export(gw: GatewayDep, session: Annotated[WebSession, Depends(page("review.read"))], kind: str, source: str = "",
                      decided: str = "", sort: str = "gain") -> Response:
    """The filtered, sorted review list (every group, not one page) as CSV (UTF-8 with BOM) or Excel, Japanese headers;
    the download is logged (review.export)."""
    if kind not in ("csv", "xlsx"):
        return Response(status_code=404)
    labels = source_labels(gw)
    source, decided, sort = _query(source, decided, sort, labels)
    groups = review.review_groups(gw, source=source, decided=decided, sort=sort, limit=None)
    rows = [[p["rank"], n, p["id"], labels.get(p["a"]["source"], p["a"]["source"]), p["a"]["token"], p["a"]["person_id"] or "",
             labels.get(p["b"]["source"], p["b"]["source"]), p["b"]["token"], p["b"]["person_id"] or "", p["weight"], p["summary"],
             p["reason"], "、".join(str(q) for q in p["rivals"]), review.DECISIONS.get(p["decision"] or "", "未判定")]
            for n, g in enumerate(groups["groups"], start=1) for p in g["pairs"]]
    gw.record(session.user.username, session.user.role, "review.export", f"{kind} rows={len(rows)}", target=f"run#{groups['run_id']}")
    return exports.download(EXPORT_HEADERS, rows, kind, f"review-run{groups['run_id']}", "要確認ペア")


@router.post("/review/{pair_id}")
def post_decision(request: Request, gw: GatewayDep, session: Annotated[WebSession, Depends(form_action("review.decide"))],
                  pair_id: Annotated[int, Path(ge=1, le=MAX_OFFSET)], decision: Annotated[str, Form(max_length=16)] = "",
                  reason: Annotated[str, Form(max_length=4000)] = "", offset: Annotated[int, Form(ge=0, le=MAX_OFFSET)] = 0,
                  source: Annotated[str, Form(max_length=64)] = "", decided: Annotated[str, Form(max_length=16)] = "",
                  sort: Annotated[str, Form(max_length=16)] = "gain") -> Response:
    """Record a decision through ``gateway.review.decide_group`` (logged; "same" settles the rivals; binding from the next run)."""
    refused: list[GatewayError] = []
    if decision not in review.DECISIONS:
        refused.append(InvalidDecision("「同一人物」か「別人」を選んでください。"))
    if not reason.strip():
        refused.append(ReasonRequired("判定の理由を入力してください（監査のため必須です）。"))
    settled: list[dict[str, Any]] = []
    if not refused:
        try:
            settled = review.decide_group(gw, session.user, pair_id, decision, reason)
        except GatewayError as exc:
            if exc.status == 404:
                raise
            refused.append(exc)
    if refused:
        errors = {"reason" if isinstance(r, (ReasonRequired, ReasonTooLong)) else "decision": r.detail for r in refused}
        return _page(request, gw, session, offset, status=refused[0].status, errors=errors, pair_id=pair_id, decision=decision, reason=reason,
                     source=source, decided=decided, sort=sort)
    done = f"{pair_id}" + (f"&rivals={len(settled) - 1}" if len(settled) > 1 else "")
    return RedirectResponse(f"/ui/review?offset={offset}&source={source}&decided={decided}&sort={sort}&done={done}#pair-{pair_id}",
                            status_code=303)
