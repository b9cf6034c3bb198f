"""スクリーニング: flagged persons of the current run, each with the rules and data items that flagged them.

Filtered (rule, source), searched (person id), sorted and paged on the server; exported as CSV or Excel with
Japanese headers; printable on A4. Persons past the capacity (上限人数) are shown only when the user explicitly asks,
and that view is logged as such.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from service import listing as exports
from gateway import screening
from gateway.db import MAX_OFFSET
from gateway.web.render import render
from gateway.web.routes.casework import source_labels
from gateway.web.session import GatewayDep, WebSession, page

router = APIRouter()
Reader = Annotated[WebSession, Depends(page("persons.read"))]
_PAGE = 50
_SORTS = {"score": "点数の高い順", "score_asc": "点数の低い順", "person": "人物 ID 順", "flags": "該当した規則の多い順"}
HEADERS = ("順位", "人物ID", "点数", "該当した規則", "根拠のデータ")


def _filtered(listing: dict[str, Any], rule: str, source: str, q: str, sort: str) -> list[dict[str, Any]]:
    wanted = q.strip().lower()
    rows = [e for e in listing["entries"]
            if (not rule or any(f["rule_id"] == rule for f in e["flags"]))
            and (not source or any(i["source"] == source for f in e["flags"] for i in f["items"]))
            and (not wanted or e["person_id"].lower().startswith(wanted))]
    if sort == "score_asc":
        rows.sort(key=lambda e: (e["score"], e["person_id"]))
    elif sort == "person":
        rows.sort(key=lambda e: e["person_id"])
    elif sort == "flags":
        rows.sort(key=lambda e: (-len(e["flags"]), -e["score"], e["person_id"]))
    return rows


def export_rows(rows: list[dict[str, Any]], labels: dict[str, str]) -> list[list[object]]:
    """One line per flagged person: rank, person id, score, rules, and the data items in words."""
    out = []
    for e in rows:
        items = [f"{labels.get(i['source'], i['source'])}: {i['attribute_label']} = {i['value_label']}" for f in e["flags"] for i in f["items"]]
        out.append([e["rank"], e["person_id"], e["score"], "／".join(f["label"] for f in e["flags"]), "／".join(dict.fromkeys(items))])
    return out


@router.get("/screening")
def get_screening(request: Request, gw: GatewayDep, session: Reader, rule: str = "", source: str = "",
                  q: Annotated[str, Query(max_length=17)] = "", sort: str = "score", offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
                  beyond: bool = False) -> Response:
    """The capped list (``gateway.screening.screen``; the view is in the audit log), filtered and paged here."""
    listing = screening.screen(gw, session.user, beyond_capacity=beyond)
    labels = source_labels(gw)
    rules = {r.id: r.label for r in screening.screening_rules(gw).rules}
    rule = rule if rule in rules else ""
    source = source if source in labels else ""
    sort = sort if sort in _SORTS else "score"
    rows = _filtered(listing, rule, source, q, sort)
    return render(request, "screening.html", session, listing=listing, labels=labels, rows=rows[offset:offset + _PAGE],
                  total=len(rows), rules=rules, rule=rule, source=source, q=q, sort=sort, sorts=_SORTS, offset=offset,
                  page_size=_PAGE, beyond=beyond, may_request=gw.policy.may(session.user.role, "reidentify.request").allowed,
                  may_record=gw.policy.may(session.user.role, "support.record").allowed)


@router.get("/screening/export.{kind}")
def get_export(gw: GatewayDep, session: Reader, kind: str, rule: str = "", source: str = "",
               q: Annotated[str, Query(max_length=17)] = "", sort: str = "score", beyond: bool = False) -> Response:
    """The filtered list as CSV (UTF-8 with BOM) or Excel, Japanese headers; the download is logged (screening.export)."""
    if kind not in ("csv", "xlsx"):
        return Response(status_code=404)
    listing = screening.screen(gw, session.user, beyond_capacity=beyond, action="screening.export")
    rows = export_rows(_filtered(listing, rule, source, q, sort), source_labels(gw))
    return exports.download(HEADERS, rows, kind, f"screening-run{listing['run_id']}", "スクリーニング")
