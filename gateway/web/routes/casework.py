"""ケースワーカー: persons of the current run, and one person's linked records and timeline (経年変化)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from gateway import casework, review, support
from gateway.errors import GatewayError, ReasonRequired, ReasonTooLong, SplitRecordsNotChosen
from service import listing as exports
from gateway.core import Gateway
from gateway.db import MAX_OFFSET
from gateway.web.render import render
from gateway.web.session import GatewayDep, WebSession, form_action, page

router = APIRouter()
Reader = Annotated[WebSession, Depends(page("persons.read"))]

_PAGE = 50
_PERSON_ID = re.compile(r"^P[0-9a-f]{16}$")


def source_labels(gw: Gateway) -> dict[str, str]:
    """Every source of the policy with its label (住民記録, 校務支援システム …)."""
    return {s: spec.label for n in gw.policy.document.networks.values() for s, spec in n.sources.items()}


_PREFIX = re.compile(r"^P[0-9a-f]{0,16}$")
PERSON_HEADERS = ("人物ID", "記録の数", "データ元の数")


def _persons_query(source: str, min_sources: int, sort: str, q: str, labels: dict[str, str]) -> dict[str, Any]:
    prefix = q.strip()
    return {"source": source if source in labels else "", "min_sources": min_sources,
            "sort": sort if sort in casework.PERSON_SORTS else "person", "prefix": prefix if _PREFIX.match(prefix) else ""}


@router.get("/persons")
def get_persons(request: Request, gw: GatewayDep, session: Reader, source: str = "",
                min_sources: Annotated[int, Query(ge=1, le=32)] = 1, offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
                person: str = "", sort: str = "person", q: Annotated[str, Query(max_length=17)] = "") -> Response:
    """Persons of the current run: filtered by source or by how many sources hold them, searched by id prefix, sorted,
    paged on the server; or jump to one person id."""
    labels = source_labels(gw)
    errors: dict[str, str] = {}
    wanted = person.strip()
    if wanted:
        if _PERSON_ID.match(wanted):
            return RedirectResponse(f"/ui/persons/{wanted}", status_code=303)
        errors["person"] = "人物 ID は P と 16 桁の英数字（例: P0123456789abcdef）です。"
    if q.strip() and not _PREFIX.match(q.strip()):
        errors["q"] = "人物 ID の先頭は P と英数字（0–9、a–f）です（例: P0a）。"
    query = _persons_query(source, min_sources, sort, q, labels)
    listing = casework.list_persons(gw, source=query["source"] or None, min_sources=min_sources, limit=_PAGE, offset=offset,
                                    sort=query["sort"], prefix=query["prefix"])
    return render(request, "persons.html", session, listing=listing, labels=labels, source=query["source"], min_sources=min_sources,
                  offset=offset, page_size=_PAGE, person=wanted, errors=errors, sort=query["sort"], sorts=casework.PERSON_SORTS,
                  q=query["prefix"])


@router.get("/persons/export.{kind}")
def get_persons_export(gw: GatewayDep, session: Reader, kind: str, source: str = "",
                       min_sources: Annotated[int, Query(ge=1, le=32)] = 1, sort: str = "person",
                       q: Annotated[str, Query(max_length=17)] = "") -> Response:
    """The filtered persons list as CSV (UTF-8 with BOM) or Excel with Japanese headers; the download is logged."""
    if kind not in ("csv", "xlsx"):
        return Response(status_code=404)
    query = _persons_query(source, min_sources, sort, q, source_labels(gw))
    listing = casework.list_persons(gw, source=query["source"] or None, min_sources=min_sources, limit=1_000_000, offset=0,
                                    sort=query["sort"], prefix=query["prefix"])
    gw.record(session.user.username, session.user.role, "persons.export", f"{kind} rows={len(listing['persons'])}",
              target=f"run#{listing['run_id']}")
    rows = [[p["person_id"], p["records"], p["sources"]] for p in listing["persons"]]
    return exports.download(PERSON_HEADERS, rows, kind, f"persons-run{listing['run_id']}", "人物")


@router.get("/exports/persons.{kind}")
def get_analyst_export(gw: GatewayDep, session: Annotated[WebSession, Depends(page("persons.export"))], kind: str) -> Response:
    """The analysts' pseudonymous export (one row per record, Japanese column names) from the browser: CSV (UTF-8 with
    BOM), Excel or Parquet — the same files and the same audit entry as ``GET /api/v1/exports/persons.*``."""
    makers = {"csv": (casework.export_csv, exports.CSV_TYPE), "xlsx": (casework.export_xlsx, exports.XLSX_TYPE),
              "parquet": (casework.export_parquet, "application/vnd.apache.parquet")}
    if kind not in makers:
        return Response(status_code=404)
    make, media = makers[kind]
    gw.record(session.user.username, session.user.role, f"export.{kind}", "ok")
    return Response(make(gw, session.user.role), media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="persons.{kind}"', "Cache-Control": "no-store"})


@router.get("/persons/{person_id}")
def get_person(request: Request, gw: GatewayDep, session: Reader, person_id: str, split: str = "") -> Response:
    """One person: linked records per source with the attributes the role may see, and every submitted version."""
    return _person_page(request, gw, session, person_id, notice="「別人」の判定を記録しました。次回の名寄せで 2 件は別の人物になります。"
                        if split == "done" else "")


@router.post("/persons/{person_id}/split")
def post_split(request: Request, gw: GatewayDep, session: Annotated[WebSession, Depends(form_action("review.decide"))],
               person_id: str, record_a: Annotated[str, Form(max_length=300)] = "", record_b: Annotated[str, Form(max_length=300)] = "",
               reason: Annotated[str, Form(max_length=4000)] = "") -> Response:
    """「別人」: two of the person's records are different children — a non-link decision (``gateway.review.decide``, logged)."""
    found = casework.person(gw, person_id, session.user.role)
    mine = {f"{r['source']}:{r['token']}": (r["source"], r["token"]) for r in found["records"]}
    try:
        if record_a not in mine or record_b not in mine or record_a == record_b:
            raise SplitRecordsNotChosen("この人物の記録から、別の子どもの記録だと思う 2 件を選んでください。")
        if not reason.strip():
            raise ReasonRequired("判定の理由を入力してください（監査のため必須です）。")
        review.decide(gw, session.user, mine[record_a], mine[record_b], "non_link", reason)
    except GatewayError as exc:
        if exc.status in (403, 404):
            raise
        field = "split_reason" if isinstance(exc, (ReasonRequired, ReasonTooLong)) else "split"
        return _person_page(request, gw, session, person_id, status=exc.status, errors={field: exc.detail},
                            values={"record_a": record_a, "record_b": record_b, "reason": reason})
    return RedirectResponse(f"/ui/persons/{person_id}?split=done#split-h", status_code=303)


def _person_page(request: Request, gw: Gateway, session: WebSession, person_id: str, *, status: int = 200, notice: str = "",
                 errors: dict[str, str] | None = None, values: dict[str, str] | None = None) -> Response:
    found = casework.person(gw, person_id, session.user.role)
    history = casework.timeline(gw, person_id, session.user.role)
    folded = casework.history(gw, person_id, session.user.role)
    by_source: dict[str, list[dict]] = {}
    for record in found["records"]:
        by_source.setdefault(record["source"], []).append(record)
    attributes = sorted({k for e in history["events"] for k in e["attributes"]})
    # Logged for the auditor, like the screening list: who looked at which person.
    gw.record(session.user.username, session.user.role, "persons.view",
              f"viewed: records={len(found['records'])} events={len(history['events'])}", target=person_id)
    may_support = gw.policy.may(session.user.role, "support.read").allowed
    return render(request, "person.html", session, status, person=found, by_source=by_source, events=history["events"],
                  attributes=attributes, labels=source_labels(gw), notice=notice, story=folded, errors=errors or {}, values=values or {},
                  may_request=gw.policy.may(session.user.role, "reidentify.request").allowed,
                  may_split=gw.policy.may(session.user.role, "review.decide").allowed and len(found["sources"]) > 1,
                  may_record=gw.policy.may(session.user.role, "support.record").allowed,
                  cases=support.list_cases(gw, person_id=person_id)["cases"] if may_support else [])
