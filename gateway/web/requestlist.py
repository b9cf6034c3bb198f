"""The re-identification request lists of the approver's and the auditor's screens: filtered, searched, sorted and
paged on the server, exported as CSV (UTF-8 with BOM) or Excel with Japanese headers.

Rows are the requests of ``gateway.audit_tools.report`` (the gateway's verified log, joined with the escrow's when an
auditor brought its export); no identity is ever in them.
"""

from __future__ import annotations

from typing import Any, Callable

from fastapi.responses import Response

from service import listing as exports
from service.web.render import jst

#: Orders of the lists, newest first unless asked otherwise.
SORTS = {"new": "新しい順", "old": "古い順", "requester": "申請者順"}
HEADERS = ("申請番号", "状態", "申請者", "日時（日本時間）", "利用目的", "法的根拠", "案件番号", "承認", "却下", "開示")


def _when(value: Any) -> str:
    return "" if not value else jst(value)


def filtered(requests: list[dict[str, Any]], *, status: str, purpose: str, q: str, sort: str,
             status_of: Callable[[dict[str, Any]], str]) -> list[dict[str, Any]]:
    """The requests with status ``status`` (as ``status_of`` words it) and purpose ``purpose``, whose id, requester or
    case reference contains ``q``, in order ``sort``."""
    wanted = q.strip().lower()
    rows = [r for r in requests
            if (not status or status_of(r) == status) and (not purpose or r.get("purpose") == purpose)
            and (not wanted or any(wanted in str(r.get(k) or "").lower() for k in ("request_id", "requester", "case_ref")))]
    if sort == "old":
        rows.sort(key=lambda r: (str(r.get("requested_at") or ""), r["request_id"]))
    elif sort == "requester":
        rows.sort(key=lambda r: (str(r.get("requester") or ""), str(r.get("requested_at") or ""), r["request_id"]))
    else:
        rows.sort(key=lambda r: (str(r.get("requested_at") or ""), r["request_id"]), reverse=True)
    return rows


def export(rows: list[dict[str, Any]], kind: str, name: str, sheet: str, *, status_label: Callable[[dict[str, Any]], str],
           purposes: dict[str, str], legal_bases: dict[str, str]) -> Response:
    """The list as a CSV or Excel download (``kind``), one line per request, every cell in words."""
    lines = [[r["request_id"], status_label(r), r.get("requester") or "", _when(r.get("requested_at")),
              purposes.get(r.get("purpose") or "", r.get("purpose") or ""), legal_bases.get(r.get("legal_basis") or "", r.get("legal_basis") or ""),
              r.get("case_ref") or "",
              "、".join(f"{a['approver']}（{_when(a.get('time'))}）" for a in r.get("approvals") or []),
              "、".join(f"{a['approver']}（{_when(a.get('time'))}）" for a in r.get("rejections") or []),
              _when(r.get("released_at"))] for r in rows]
    return exports.download(HEADERS, lines, kind, name, sheet)
