"""支援記録・評価・部署への依頼: recording what staff decided and did, the evaluation pages, and the return lists."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from gateway import returnpath, support
from gateway.errors import ChartNotFound, GatewayError, InvalidPerson, NoFont
from gateway.evaluation import report
from gateway.evaluation.data import PERIOD_KINDS
from gateway.web.render import render
from gateway.web.routes.casework import source_labels
from gateway.web.session import GatewayDep, WebSession, form_action, page
from service import listing as exports
from service.web.render import jst

router = APIRouter()
Reader = Annotated[WebSession, Depends(page("support.read"))]
_PERSON_ID = re.compile(r"^P[0-9a-f]{16}$")
_KINDS = tuple(PERIOD_KINDS)


def _form_fields(form: Any) -> dict[str, Any]:
    """The coded fields of a case form (checkbox groups as lists; empty strings as None)."""
    text = {k: (str(form.get(k) or "").strip() or None) for k in
            ("status", "assignee", "department", "assessment", "not_needed_reason", "checked_on", "supported_on")}
    return {**text, "note": str(form.get("note") or ""), "difficulties": [str(v) for v in form.getlist("difficulties")],
            "supports": [str(v) for v in form.getlist("supports")]}


def _form_page(request: Request, gw: GatewayDep, session: WebSession, *, case: dict[str, Any] | None, person_id: str,
               values: dict[str, Any], error: str = "", status: int = 200, done: str = "") -> Response:
    try:
        index = report.person_risk_index(gw, person_id)
    except GatewayError:  # no such person in the current run, no run, or too few decisions yet: the form shows no index
        index = None
    return render(request, "support_case.html", session, status, case=case, person_id=person_id, values=values,
                  vocab=support.vocabulary_json(gw), error=error, done=done, index=index,
                  may_record=gw.policy.may(session.user.role, "support.record").allowed)


_PAGE = 50
#: The support list's export columns, in the screen's words.
EXPORT_HEADERS = ("番号", "人物ID", "経路", "判断", "困難の種類", "支援", "担当部署", "対応状況", "担当", "記録した日", "最終更新（日本時間）")


def _list_query(vocab: dict[str, Any], status: str, sort: str) -> tuple[str, str]:
    return (status if status in vocab["statuses"] else ""), (sort if sort in support.CASE_SORTS else "new")


@router.get("/support")
def get_support(request: Request, gw: GatewayDep, session: Reader, status: str = "", q: Annotated[str, Query(max_length=40)] = "",
                sort: str = "new", offset: Annotated[int, Query(ge=0)] = 0) -> Response:
    """Cases filtered by status, searched by case number, person id or assignee, sorted, 50 a page."""
    vocab = support.vocabulary_json(gw)
    status, sort = _list_query(vocab, status, sort)
    found = support.list_cases(gw, status=status or None, search=q, sort=sort, limit=_PAGE, offset=offset)
    return render(request, "support_list.html", session, listing=found, vocab=vocab, status=status, q=q, sort=sort, offset=offset,
                  page_size=_PAGE, sorts={k: label for k, (label, _) in support.CASE_SORTS.items()})


@router.get("/support/export.{kind}")
def get_support_export(gw: GatewayDep, session: Reader, kind: str, status: str = "", q: Annotated[str, Query(max_length=40)] = "",
                       sort: str = "new") -> Response:
    """The filtered, sorted support list (every case, not one page) as CSV (UTF-8 with BOM) or Excel with Japanese
    headers and labels, never codes; coded like the screen (no note, no identity); the download is logged (support.export)."""
    if kind not in ("csv", "xlsx"):
        return Response(status_code=404)
    vocab = support.vocabulary_json(gw)
    status, sort = _list_query(vocab, status, sort)
    cases = support.list_cases(gw, status=status or None, search=q, sort=sort, limit=None)["cases"]
    rows = [[c["id"], c["person_id"], f"スクリーニング（{c['rank']} 位）" if c["origin"] == "screening" else "その他の経路",
             vocab["assessments"].get(c["assessment"], c["assessment"]),
             "、".join(vocab["difficulties"].get(d, d) for d in c["difficulties"]),
             "、".join(vocab["supports"].get(x, x) for x in c["supports"]),
             vocab["departments"].get(c["department"], c["department"]) if c["department"] else "",
             vocab["statuses"].get(c["status"], c["status"]), c["assignee"] or "", c["opened_on"], jst(c["updated_at"])]
            for c in cases]
    gw.record(session.user.username, session.user.role, "support.export", f"{kind} rows={len(rows)}", target=f"status={status or 'all'}")
    return exports.download(EXPORT_HEADERS, rows, kind, "support", "支援記録")


@router.get("/support/new")
def get_new(request: Request, gw: GatewayDep, session: Annotated[WebSession, Depends(page("support.record"))],
            person: str = "") -> Response:
    """The form for a new case of ``person`` (from the screening list or the person page)."""
    if not _PERSON_ID.match(person):
        raise InvalidPerson("人物 ID は P と 16 桁の英数字です。スクリーニングか人物の画面から開いてください。")
    values = {"status": "checking", "assessment": "pending", "assignee": session.user.username, "difficulties": [], "supports": []}
    return _form_page(request, gw, session, case=None, person_id=person, values=values)


@router.post("/support")
async def post_new(request: Request, gw: GatewayDep, session: Annotated[WebSession, Depends(form_action("support.record"))]) -> Response:
    """Open the case (``gateway.support.open_case``: validated, logged with the change)."""
    form = await request.form()
    person_id = str(form.get("person_id") or "")
    fields = _form_fields(form)
    try:
        case = await run_in_threadpool(lambda: support.open_case(gw, session.user, person_id, **fields))
    except GatewayError as exc:
        if exc.status != 422:
            raise
        return await run_in_threadpool(lambda: _form_page(request, gw, session, case=None, person_id=person_id, values=fields,
                                                          error=exc.detail, status=exc.status))
    return RedirectResponse(f"/ui/support/{case['id']}?done=opened", status_code=303)


@router.get("/support/{case_id}")
def get_case(request: Request, gw: GatewayDep, session: Reader, case_id: int, done: str = "") -> Response:
    """One case: the coded fields, the form to change them, every version, and the person's risk index."""
    case = support.get_case(gw, case_id)
    return _form_page(request, gw, session, case=case, person_id=case["person_id"], values=case, done=done)


@router.post("/support/{case_id}")
async def post_case(request: Request, gw: GatewayDep, session: Annotated[WebSession, Depends(form_action("support.record"))],
                    case_id: int) -> Response:
    """Change the case (refused when someone else changed it since the form was opened)."""
    form = await request.form()
    fields = _form_fields(form)
    raw_version = str(form.get("version") or "")
    version = int(raw_version) if raw_version.isdigit() else None
    try:
        await run_in_threadpool(lambda: support.update_case(gw, session.user, case_id, expected_version=version, **fields))
    except GatewayError as exc:
        if exc.status not in (409, 422):
            raise
        case = await run_in_threadpool(support.get_case, gw, case_id)
        return await run_in_threadpool(lambda: _form_page(request, gw, session, case=case, person_id=case["person_id"],
                                                          values={**case, **fields}, error=exc.detail, status=exc.status))
    return RedirectResponse(f"/ui/support/{case_id}?done=updated", status_code=303)


@router.get("/evaluation")
def get_evaluation(request: Request, gw: GatewayDep, session: Annotated[WebSession, Depends(page("evaluation.read"))],
                   period: str = "month") -> Response:
    """The evaluation: summary, funnels, per-rule precision, reach, the human check, the risk index; charts beside."""
    period = period if period in _KINDS else "month"
    result = report.evaluation(gw, period)  # type: ignore[arg-type]
    gw.record(session.user.username, session.user.role, "evaluation.view", f"period={period}")
    return render(request, "evaluation.html", session, report=result, summary=report.summary(result), period=period,
                  kinds=PERIOD_KINDS, charts=report.CHARTS, may_export=gw.policy.may(session.user.role, "persons.export").allowed)


@router.get("/evaluation/charts/{name}.png")
def get_chart(gw: GatewayDep, session: Annotated[WebSession, Depends(page("evaluation.read"))], name: str,
              period: str = "month") -> Response:
    """One chart of the evaluation as PNG (drawn on request, not stored)."""
    if name not in report.CHARTS:
        raise ChartNotFound("そのグラフはありません。")
    result = report.evaluation(gw, period if period in _KINDS else "month")  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            report.charts(result, Path(tmp), only=name)
        except report.ReportError as exc:
            raise NoFont(str(exc)) from None
        data = (Path(tmp) / f"{name}.png").read_bytes()
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get("/returns")
def get_returns(request: Request, gw: GatewayDep, session: Annotated[WebSession, Depends(page("returns.send"))],
                done: str = "") -> Response:
    """Lists sent to departments, and the form for a new one (cases in 確認中 or 支援中)."""
    cases = [c for c in support.list_cases(gw, limit=500)["cases"] if c["status"] in ("checking", "supporting")]
    return render(request, "returns.html", session, lists=returnpath.list_lists(gw), cases=cases, labels=source_labels(gw),
                  vocab=support.vocabulary_json(gw), purposes=gw.policy.purposes(), done=done, error="")


@router.post("/returns")
async def post_returns(request: Request, gw: GatewayDep, session: Annotated[WebSession, Depends(form_action("returns.send"))]) -> Response:
    """Sign and store a list (``gateway.returnpath.create``; logged)."""
    form = await request.form()
    ids = [int(v) for v in form.getlist("case_ids") if str(v).isdigit()]
    try:
        made = await run_in_threadpool(returnpath.create, gw, session.user, str(form.get("source") or ""), str(form.get("action") or ""),
                                       str(form.get("purpose") or ""), ids)
    except GatewayError as exc:
        if exc.status not in (403, 404, 422):
            raise
        cases = [c for c in support.list_cases(gw, limit=500)["cases"] if c["status"] in ("checking", "supporting")]
        return render(request, "returns.html", session, exc.status, lists=returnpath.list_lists(gw), cases=cases, labels=source_labels(gw),
                      vocab=support.vocabulary_json(gw), purposes=gw.policy.purposes(), done="", error=exc.detail)
    return RedirectResponse(f"/ui/returns?done={made['id']}", status_code=303)


@router.get("/returns/{list_id}.jsonl")
def get_return_file(gw: GatewayDep, session: Annotated[WebSession, Depends(page("returns.send"))], list_id: str) -> Response:
    """The signed list to carry to the department (the download is logged)."""
    return Response(returnpath.signed_list(gw, session.user, list_id), media_type="application/x-ndjson",
                    headers={"Content-Disposition": f'attachment; filename="{list_id}.jsonl"'})
