"""開封: the custodians' page — the escrow's status with progress, one share offered per custodian, and sealing again.

The share file and its passphrase are typed into the escrow's own page (never the gateway's); the escrow keeps the
share in memory only, exactly as ``POST /api/v1/unseal`` does, and logs every offer and refusal.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from escrow.errors import EscrowError, PassphraseMissing, ShareFileMissing
from escrow.service import Escrow
from escrow.web.render import render
from escrow.web.session import EscrowDep, WebSession, form, page

router = APIRouter()
_MAX_SHARE = 65536


def _page(request: Request, escrow: Escrow, session: WebSession, status_code: int = 200, error: str = "", notice: str = "") -> Response:
    return render(request, "unseal.html", session, status_code, status=escrow.vault.status().to_json(), error=error, notice=notice,
                  may_unseal="custodian" in session.user.roles)


@router.get("/unseal")
def get_unseal(request: Request, escrow: EscrowDep, session: Annotated[WebSession, Depends(page("custodian", "admin"))],
               done: str = "") -> Response:
    """Sealed or not, how many of the k custodians have unsealed, and the form for one more share."""
    notice = {"share": "持分を受け付けました。", "sealed": "封印しました。鍵はメモリから消えました。"}.get(done, "")
    return _page(request, escrow, session, notice=notice)


@router.post("/unseal")
async def post_unseal(request: Request, escrow: EscrowDep, session: Annotated[WebSession, Depends(form("custodian"))]) -> Response:
    """Offer one share (the file chosen from the custodian's own medium) with its passphrase."""
    data = await request.form()
    share, passphrase = data.get("share"), str(data.get("passphrase") or "")
    content = await share.read(_MAX_SHARE + 1) if isinstance(share, UploadFile) else b""
    if not content or len(content) > _MAX_SHARE:
        refused: EscrowError = ShareFileMissing("持分ファイルを選んでください（keys init が作った share-*.json）。")
        return _page(request, escrow, session, refused.status, error=refused.detail)
    if not passphrase:
        refused = PassphraseMissing("持分のパスフレーズを入力してください。")
        return _page(request, escrow, session, refused.status, error=refused.detail)
    try:
        await run_in_threadpool(escrow.offer_share, session.user.username, content, passphrase)
    except EscrowError as exc:
        return _page(request, escrow, session, exc.status, error=exc.detail)
    return RedirectResponse("/ui/unseal?done=share", status_code=303)


@router.post("/seal")
def post_seal(escrow: EscrowDep, session: Annotated[WebSession, Depends(form("custodian", "admin"))]) -> Response:
    """Drop the escrow key and any offered shares from memory (logged)."""
    escrow.seal(session.user.username, session.user.roles)
    return RedirectResponse("/ui/unseal?done=sealed", status_code=303)
