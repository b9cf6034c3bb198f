"""監査担当: every re-identification request with its approvals and outcome, anomalies, and the log checked against a kept checkpoint."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request, UploadFile
from fastapi.responses import Response

from gateway import audit_tools
from gateway.core import Gateway
from gateway.db import MAX_OFFSET
from gateway.errors import CheckpointMissing, CheckpointNotProven, EscrowExportInvalid, EscrowExportMissing, UploadUnreadable
from gateway.web import requestlist
from gateway.web.render import render
from gateway.web.routes.approvals import purpose_labels
from gateway.web.session import GatewayDep, WebSession, form_action, page
from keys.audit import AuditVerificationError, split_export, verify_export
from transparency.tlog_witness import peers
from keys.audit_report import OUTCOMES, ReportInputError
from policy import LEGAL_BASES

router = APIRouter()
Auditor = Annotated[WebSession, Depends(page("audit.read"))]
AuditorForm = Annotated[WebSession, Depends(form_action("audit.read"))]

_MAX_UPLOAD = 256 * 1024 * 1024


#: Anomaly kinds of ``keys.audit_report.anomalies`` in words (an unknown kind shows as itself).
ANOMALY_KINDS = {"no_case_ref": "案件番号なし", "off_hours": "勤務時間外", "many_requests": "短期間の多数の申請",
                 "repeated_pair": "同じ申請者と承認者の繰り返し", "not_in_gateway_log": "ゲートウェイの記録なし",
                 "binding_mismatch": "ゲートウェイの記録と不一致", "gateway_refused_but_acted": "拒否された申請への処理",
                 "unbound_gateway_entry": "エスクローと結び付かない記録"}
_PAGE = 50


def _list_query(outcome: str, purpose: str, q: str, sort: str, purposes: dict[str, str]) -> dict[str, str]:
    return {"outcome": outcome if outcome in OUTCOMES else "", "purpose": purpose if purpose in purposes else "", "q": q,
            "sort": sort if sort in requestlist.SORTS else "old"}  # the auditor reads the log's own order


def _page(request: Request, gw: Gateway, session: WebSession, status: int = 200, *, escrow_lines: list[str] | None = None,
          errors: dict[str, str] | None = None, verified: dict[str, Any] | None = None, checkpoint_text: str = "",
          query: dict[str, str] | None = None, offset: int = 0) -> Response:
    report = audit_tools.report_for(gw, session.user, escrow_lines)
    latest = gw.audit.latest_checkpoint() or ""
    purposes = purpose_labels(gw)
    query = query or _list_query("", "", "", "old", purposes)
    rows = requestlist.filtered(report["requests"], status=query["outcome"], purpose=query["purpose"], q=query["q"], sort=query["sort"],
                                status_of=lambda r: r["outcome"])
    # Joined with an escrow export (a POST), every matching request is shown: a page link could not carry the upload.
    page_size = (len(rows) or 1) if escrow_lines else _PAGE
    return render(request, "audit.html", session, status, report=report, legal_bases=LEGAL_BASES, purposes=purposes,
                  with_escrow=bool(escrow_lines), requests=rows[offset:offset + page_size], total=len(rows), offset=offset,
                  page_size=page_size, query=query, sorts=requestlist.SORTS, anomaly_kinds=ANOMALY_KINDS,
                  checkpoint=latest, size=gw.audit.size(), vkey=gw.signer.verifier.vkey(),
                  checkpoint_download=f"data:text/plain;base64,{base64.b64encode(latest.encode()).decode()}",
                  errors=errors or {}, verified=verified, checkpoint_text=checkpoint_text)


async def _text(upload: UploadFile | None, what: str) -> str:
    if upload is None or not upload.filename:
        return ""
    data = await upload.read(_MAX_UPLOAD + 1)
    if len(data) > _MAX_UPLOAD:
        raise UploadUnreadable(f"{what}が大きすぎます（上限 {_MAX_UPLOAD // (1024 * 1024)} MiB）。")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UploadUnreadable(f"{what}を UTF-8 のテキストとして読めません。") from None


@router.get("/audit")
def get_audit(request: Request, gw: GatewayDep, session: Auditor, outcome: str = "", purpose: str = "",
              q: Annotated[str, Query(max_length=64)] = "", sort: str = "old",
              offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> Response:
    """The report over the gateway's own log (the view is logged): its requests filtered by outcome and purpose, searched
    (id, requester, case reference), sorted and paged; the current checkpoint and the verification form."""
    return _page(request, gw, session, query=_list_query(outcome, purpose, q, sort, purpose_labels(gw)), offset=offset)


@router.get("/audit/requests.{kind}")
def get_requests_export(gw: GatewayDep, session: Auditor, kind: str, outcome: str = "", purpose: str = "",
                        q: Annotated[str, Query(max_length=64)] = "", sort: str = "old") -> Response:
    """The filtered request list of the gateway's log (every page) as CSV (UTF-8 with BOM) or Excel, Japanese headers;
    the download is logged."""
    if kind not in ("csv", "xlsx"):
        return Response(status_code=404)
    purposes = purpose_labels(gw)
    query = _list_query(outcome, purpose, q, sort, purposes)
    report = audit_tools.report(audit_tools.export_lines(gw), None)
    rows = requestlist.filtered(report["requests"], status=query["outcome"], purpose=query["purpose"], q=query["q"], sort=query["sort"],
                                status_of=lambda r: r["outcome"])
    gw.record(session.user.username, session.user.role, "audit.requests_export", f"{kind} rows={len(rows)}")
    return requestlist.export(rows, kind, "audit-requests", "再識別の申請（監査）", status_label=lambda r: OUTCOMES.get(r["outcome"], r["outcome"]),
                              purposes=purposes, legal_bases=LEGAL_BASES)


@router.get("/audit/export")
def get_export(gw: GatewayDep, session: Auditor) -> Response:
    """The gateway's audit log as JSON lines for ``tsunagu audit verify`` (logged, as the API's export)."""
    gw.record(session.user.username, session.user.role, "audit.export", "exported")
    return Response("\n".join(audit_tools.witnessed_export_lines(gw)) + "\n", media_type="application/jsonl; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="gateway-audit.jsonl"'})


@router.post("/audit/verify")
async def post_verify(request: Request, gw: GatewayDep, session: AuditorForm,
                      checkpoint: Annotated[str, Form(max_length=8192)] = "", checkpoint_file: UploadFile | None = None) -> Response:
    """Verify this gateway's log, signed by its own key, and prove a checkpoint the auditor kept is a prefix of it (RFC 9162)."""
    try:
        note = checkpoint or await _text(checkpoint_file, "チェックポイントのファイル")
        note = note.replace("\r\n", "\n").strip()  # a pasted note comes back from the textarea with CRLF
        if not note:
            raise CheckpointMissing("以前に保存したチェックポイントを貼り付けるか、ファイルを選んでください。")
    except (UploadUnreadable, CheckpointMissing) as exc:
        return _page(request, gw, session, exc.status, errors={"checkpoint": exc.detail})
    vkey = gw.signer.verifier.vkey()
    # With witnesses configured, the log must also end with a checkpoint they cosigned.
    witnesses = [p.key.vkey() for p in peers(gw.witness_folder)] or None
    lines = audit_tools.witnessed_export_lines(gw) if witnesses else audit_tools.export_lines(gw)
    try:
        result = verify_export(lines, pinned_vkey=vkey, previous_note=note + "\n", witness_vkeys=witnesses)
    except AuditVerificationError as exc:
        gw.record(session.user.username, session.user.role, "audit.verify", "failed")
        refused = CheckpointNotProven(str(exc))
        return _page(request, gw, session, refused.status, errors={"checkpoint": refused.detail}, checkpoint_text=note)
    gw.record(session.user.username, session.user.role, "audit.verify", f"consistent: {result.previous_size} -> {result.size}")
    return _page(request, gw, session, verified={"size": result.size, "previous_size": result.previous_size,
                                                 "root": result.root.hex(), "witnesses": [c.witness for c in result.cosignatures]},
                 checkpoint_text=note)


@router.post("/audit/report")
async def post_report(request: Request, gw: GatewayDep, session: AuditorForm, escrow_export: UploadFile | None = None) -> Response:
    """The report joined with the escrow's audit export an auditor brought (both verified first)."""
    try:
        text = await _text(escrow_export, "エスクローの監査ログ")
        if not text.strip():
            raise EscrowExportMissing("エスクローの監査ログの書き出し（JSON lines）を選んでください。")
        try:
            return _page(request, gw, session, escrow_lines=split_export(text))
        except (AuditVerificationError, ReportInputError) as exc:
            raise EscrowExportInvalid(f"エスクローの書き出しを検証できません: {exc}") from None
    except (UploadUnreadable, EscrowExportMissing, EscrowExportInvalid) as exc:
        return _page(request, gw, session, exc.status, errors={"escrow_export": exc.detail})
