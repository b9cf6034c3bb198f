"""Re-identification at the escrow, in the browser: the approvers' queue, one request beside the gateway's log entry,
approve / reject with a reason, the caseworker's filing (sent by the gateway's page, no file carried by hand), and the
one-time receipt of the identity.

Every action goes through ``escrow.reidentification`` — the same checks, refusals and audit entries as the API.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from escrow import db, reidentification
from escrow.errors import EscrowError, ForbiddenRole, NotRequester, RejectionReasonRequired
from service.errors import CredentialsMissing, FormExpired, Refusal
from escrow.identity import sign_in
from escrow.reidentification import RequestFiling
from escrow.service import Escrow
from escrow.web.render import STATUS, identity_view, render
from escrow.web.routes.auth import address
from escrow.web.session import COOKIES, EscrowDep, WebSession, form, optional_session, page
from policy import LEGAL_BASES
from service import listing
from service.web.render import jst
from service.web.session import new_login_nonce

router = APIRouter()

_READERS = ("approver", "auditor", "admin", "caseworker")
_PAGE = 50
_SORTS = {"new": ("created_at", True), "old": ("created_at", False), "status": ("status", False), "requester": ("requester", False)}
#: How long the opened identity stays on the receipt page before the page clears it (the browser may print before).
RECEIPT_SECONDS = 15 * 60


def _sees_all(session: WebSession) -> bool:
    return bool(session.user.roles & {"approver", "auditor", "admin"})


def gateway_side(escrow: Escrow, request_id: str) -> dict[str, Any]:
    """What the gateway logged for this request, as the filing carried it and the escrow verified it (entry, leaf, checkpoint)."""
    with escrow.engine.connect() as conn:
        row = conn.execute(select(db.requests.c.gateway_entry, db.requests.c.gateway_leaf_index, db.requests.c.gateway_checkpoint)
                           .where(db.requests.c.id == request_id)).first()
    if row is None:
        return {}
    checkpoint = row.gateway_checkpoint.splitlines()
    return {"entry": json.loads(row.gateway_entry), "leaf_index": row.gateway_leaf_index,
            "log_origin": checkpoint[0] if checkpoint else "", "log_size": checkpoint[1] if len(checkpoint) > 1 else ""}


def _filtered(escrow: Escrow, status: str, q: str, sort: str) -> tuple[list[dict[str, Any]], dict[str, int], str, str]:
    """The queue's rows for a status, a search and a sort (the screen and its export), with the count per status."""
    found = reidentification.list_requests(escrow)
    counts = {s: sum(r["status"] == s for r in found) for s in STATUS if s != "not_filed"}
    status = status if status in counts else ""
    wanted = q.strip().lower()
    rows = [r for r in found if (not status or r["status"] == status)
            and (not wanted or wanted in r["request_id"].lower() or wanted in r["requester"].lower() or wanted in r["case_ref"].lower())]
    sort = sort if sort in _SORTS else "new"
    key, reverse = _SORTS[sort]
    rows.sort(key=lambda r: r[key] or "", reverse=reverse)
    return rows, counts, status, sort


#: The export's columns, in the screen's words.
EXPORT_HEADERS = ("申請番号", "状態", "申請者", "提出日時", "利用目的", "法的根拠", "案件番号", "記録数", "承認数", "必要な承認数",
                  "承認・却下", "開示日時")


@router.get("/requests/export.{kind}")
def get_queue_export(request: Request, escrow: EscrowDep, session: Annotated[WebSession, Depends(page("approver", "auditor", "admin"))],
                     kind: str, status: str = "", q: Annotated[str, Query(max_length=100)] = "", sort: str = "new") -> Response:
    """The filtered, sorted queue (every row, not one page) as CSV (UTF-8 with BOM) or Excel with Japanese headers;
    pseudonymous like the screen (no identity, no record token), and the download is logged (requests.export)."""
    if kind not in ("csv", "xlsx"):
        return Response(status_code=404)
    rows, _, status, sort = _filtered(escrow, status, q, sort)
    policy = escrow.policy
    purposes = {p.name: p.label for p in policy.purposes()} if policy is not None else {}
    lines = [[r["request_id"], STATUS.get(r["status"], r["status"]), r["requester"], jst(r["created_at"]),
              purposes.get(r["purpose"], r["purpose"]), LEGAL_BASES.get(r["legal_basis"], r["legal_basis"]), r["case_ref"],
              len(r["records"]), r["approvals"], r["approvals_required"],
              "、".join(f"{d['approver']}（{'承認' if d['decision'] == 'approve' else '却下'}・{jst(d['at'])}）" for d in r["decisions"]),
              jst(r["released_at"]) if r["released_at"] else ""] for r in rows]
    role = next(r for r in ("approver", "auditor", "admin") if r in session.user.roles)
    escrow.record(session.user.username, role, "requests.export", f"{kind} rows={len(lines)}",
                  target=f"status={status or 'all'}")
    return listing.download(EXPORT_HEADERS, lines, kind, "escrow-requests", "再識別の申請")


@router.get("/requests")
def get_queue(request: Request, escrow: EscrowDep, session: Annotated[WebSession, Depends(page("approver", "auditor", "admin"))],
              status: str = "", q: Annotated[str, Query(max_length=100)] = "", sort: str = "new",
              offset: Annotated[int, Query(ge=0)] = 0) -> Response:
    """Every request at the escrow, filtered by status and searched by id, requester or case reference; pending first by default."""
    rows, counts, status, sort = _filtered(escrow, status, q, sort)
    return render(request, "queue.html", session, rows=rows[offset:offset + _PAGE], total=len(rows), counts=counts, status=status,
                  q=q, sort=sort, offset=offset, page_size=_PAGE)


def _detail(request: Request, escrow: Escrow, session: WebSession, request_id: str, status_code: int = 200,
            error: str = "", notice: str = "") -> Response:
    found = reidentification.describe(escrow, request_id)
    if not _sees_all(session) and found["requester"] != session.user.username:
        raise NotRequester("ケースワーカーが見られるのは自分の申請だけです。")
    mine = found["requester"] == session.user.username
    decided = any(d["approver"] == session.user.username for d in found["decisions"])
    return render(request, "request.html", session, status_code, r=found, gateway=gateway_side(escrow, request_id), error=error,
                  notice=notice, may_decide="approver" in session.user.roles and not mine and not decided and found["status"] == "pending",
                  may_receive=mine and "caseworker" in session.user.roles and found["status"] == "approved")


@router.get("/requests/{request_id}")
def get_request(request: Request, escrow: EscrowDep, session: Annotated[WebSession, Depends(page(*_READERS))], request_id: str,
                filed: bool = False, decided: str = "") -> Response:
    """One request: the filing beside the gateway's log entry, decisions, status; the forms the user may use."""
    notice = ("申請を受け付けました。ゲートウェイの監査ログに記録されていることを確認済みです。承認をお待ちください。" if filed else
              {"approve": "承認しました。", "reject": "却下しました。"}.get(decided, ""))
    return _detail(request, escrow, session, request_id, notice=notice)


def _decide(request: Request, escrow: Escrow, session: WebSession, request_id: str, approve: bool, reason: str) -> Response:
    try:
        reidentification.decide(escrow, session.user, request_id, approve, reason.strip())
    except EscrowError as exc:
        if exc.status == 404:
            raise
        return _detail(request, escrow, session, request_id, exc.status, error=exc.detail)
    return RedirectResponse(f"/ui/requests/{request_id}?decided={'approve' if approve else 'reject'}", status_code=303)


@router.post("/requests/{request_id}/approve")
def post_approve(request: Request, escrow: EscrowDep, session: Annotated[WebSession, Depends(form("approver"))], request_id: str,
                 reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """Approve (``reidentification.decide``: never one's own request; logged)."""
    return _decide(request, escrow, session, request_id, True, reason)


@router.post("/requests/{request_id}/reject")
def post_reject(request: Request, escrow: EscrowDep, session: Annotated[WebSession, Depends(form("approver"))], request_id: str,
                reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """Reject with a reason (required here: the requester and the auditor read it)."""
    if not reason.strip():
        refused = RejectionReasonRequired("却下の理由を書いてください（申請者と監査担当が読みます）。")
        return _detail(request, escrow, session, request_id, refused.status, error=refused.detail)
    return _decide(request, escrow, session, request_id, False, reason)


@router.get("/mine")
def get_mine(request: Request, escrow: EscrowDep, session: Annotated[WebSession, Depends(page("caseworker"))]) -> Response:
    """The caseworker's own requests, with status and the time left to receive an approved one."""
    rows = reidentification.list_requests(escrow, session.user.username)
    return render(request, "mine.html", session, rows=rows)


@router.post("/requests/{request_id}/receive")
def post_receive(request: Request, escrow: EscrowDep, session: Annotated[WebSession, Depends(form("caseworker"))],
                 request_id: str) -> Response:
    """Open the request's records once (``reidentification.release``: logged before opening) and show them, never stored."""
    try:
        released = reidentification.release(escrow, session.user, request_id)
    except EscrowError as exc:
        if exc.status in (403, 404):
            raise
        return _detail(request, escrow, session, request_id, exc.status, error=exc.detail)
    found = reidentification.describe(escrow, request_id)
    records = [{**r, "view": identity_view(r["identity"])} for r in released["records"]]
    return render(request, "receipt.html", session, r=found, records=records, released_at=released["released_at"],
                  receipt_seconds=RECEIPT_SECONDS)


# --- Filing: the gateway's page posts the package here; the caseworker confirms with their escrow session -------------

#: Said under a filing that does not open: where to send it from again.
_SEND_AGAIN = "ゲートウェイの「再識別の申請」画面からもう一度送ってください。"


def _parse_filing(escrow: Escrow, text: str) -> tuple[RequestFiling | None, Refusal | None]:
    """The filing the gateway signed, to show before it is confirmed (``reidentification.read_filing``; not logged)."""
    try:
        return reidentification.read_filing(escrow, text), None
    except EscrowError as exc:
        return None, _send_again(exc)


def _send_again(refused: EscrowError) -> EscrowError:
    """A filing's refusal as the page says it: with where to send it from again."""
    return type(refused)(f"{refused.detail} {_SEND_AGAIN}")


def _file_page(request: Request, session: WebSession | None, text: str, filing: RequestFiling | None, status_code: int = 200,
               error: str = "", username: str = "") -> Response:
    nonce = new_login_nonce()
    response = render(request, "file.html", session, status_code, filing=filing, filing_text=text, error=error, nonce=nonce,
                      username=username, is_caseworker=bool(session and "caseworker" in session.user.roles))
    COOKIES.set_login_cookie(request, response, nonce)
    return response


@router.post("/file")
def post_file(request: Request, escrow: EscrowDep, filing: Annotated[str, Form(max_length=4_000_000)] = "") -> Response:
    """Show what the gateway's page sent, to be confirmed by the requesting caseworker (nothing is stored yet)."""
    session = optional_session(request, escrow)
    parsed, refused = _parse_filing(escrow, filing)
    if refused is not None:
        return _file_page(request, session, filing, None, refused.status, error=refused.detail)
    return _file_page(request, session, filing, parsed)


@router.post("/file/confirm")
async def post_file_confirm(request: Request, escrow: EscrowDep, session: Annotated[WebSession, Depends(form("caseworker"))],
                            filing: Annotated[str, Form(max_length=4_000_000)] = "") -> Response:
    """File the request: the envelope is opened once (``reidentification.open_filing``, a refusal logged), then
    ``reidentification.file_request`` verifies it against the gateway's log and logs the outcome."""
    try:
        parsed = await run_in_threadpool(reidentification.open_filing, escrow, session.user, filing)
    except EscrowError as exc:
        return _file_page(request, session, filing, None, exc.status, error=_send_again(exc).detail)
    try:
        target = await run_in_threadpool(_filed, escrow, session.user, parsed)
    except EscrowError as exc:
        return _file_page(request, session, filing, parsed, exc.status, error=exc.detail)
    return RedirectResponse(target, status_code=303)


def _filed(escrow: Escrow, user: Any, parsed: RequestFiling) -> str:
    filed = reidentification.file_request(escrow, user, parsed)
    return f"/ui/requests/{filed['request_id']}?filed=true"


@router.post("/file/login")
async def post_file_login(request: Request, escrow: EscrowDep, filing: Annotated[str, Form(max_length=4_000_000)] = "",
                          username: Annotated[str, Form(max_length=64)] = "", password: Annotated[str, Form(max_length=1024)] = "",
                          nonce: Annotated[str, Form(max_length=64)] = "") -> Response:
    """Sign in with the escrow's own account and file in one step (the password is the caseworker's confirmation)."""
    parsed, unreadable = _parse_filing(escrow, filing)
    refused: Refusal | None = unreadable
    if refused is None and not COOKIES.login_nonce_ok(request, nonce):
        refused = FormExpired("画面の有効期限が切れました。もう一度入力してください。")
    elif refused is None and (not username.strip() or not password):
        refused = CredentialsMissing("エスクローの利用者名とパスワードを入力してください。")
    if refused is not None:
        return _file_page(request, None, filing, parsed, refused.status, error=refused.detail, username=username if parsed else "")
    try:
        token, user, expires = await run_in_threadpool(sign_in, escrow, username.strip(), password, address(request),
                                                       "signed in (web)")
    except EscrowError as exc:
        return _file_page(request, None, filing, parsed, exc.status, error=exc.detail, username=username)
    try:
        if "caseworker" not in user.roles:
            raise escrow.refuse(user.username, user.label, "reidentify.request",
                                ForbiddenRole("申請を提出できるのはケースワーカーだけです。"), target=parsed.request_id)
        target = await run_in_threadpool(_filed, escrow, user, parsed)
    except EscrowError as exc:
        response = _file_page(request, COOKIES.session(user, token), filing, parsed, exc.status, error=exc.detail)
    else:
        response = RedirectResponse(target, status_code=303)
    COOKIES.set_session_cookie(request, response, token, expires)
    return response

