"""自治体間連携: transfer-in queries to the municipality a child came from, their answers, and handover requests and
answers — the same service functions as the API (``gateway.federation.service``), so checks and logs are the same."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from gateway.core import Gateway
from gateway.errors import GatewayError, HandoverIncomplete
from gateway.federation import config as federation_config
from gateway.federation import delivery, service
from gateway.web.render import render
from gateway.web.routes.casework import source_labels
from gateway.web.session import GatewayDep, WebSession, form_action, page

router = APIRouter()
Reader = Annotated[WebSession, Depends(page("persons.read"))]
Asker = Annotated[WebSession, Depends(form_action("reidentify.request"))]
STATUS = {"sent": "送信済み（回答待ち）", "answered": "回答あり", "refused": "拒否", "open": "回答待ち", "withdrawn": "取り下げ",
          "closed": "完了"}


def _overview(request: Request, gw: Gateway, session: WebSession, status: int = 200, error: str = "", notice: str = "") -> Response:
    config = federation_config.load(gw.settings.home)
    return render(request, "federation.html", session, status, config=config, peer_names=_peer_names(gw), queries=service.list_queries(gw),
                  incoming=service.list_handovers(gw, "in"), outgoing=service.list_handovers(gw, "out"), labels=source_labels(gw),
                  status_labels=STATUS, error=error, notice=notice,
                  may_ask=gw.policy.may(session.user.role, "reidentify.request").allowed,
                  attributes=sorted({a for n in gw.policy.document.networks.values() for s in n.sources.values() for a in s.attributes}))


def _peer_names(gw: Gateway) -> dict[str, str]:
    """Each peer's name by its municipality code (a code no longer configured shows as itself)."""
    try:
        return {p.code: f"{p.name}（{p.code}）" if p.name else p.code for p in federation_config.load(gw.settings.home).peers}
    except GatewayError:
        return {}


@router.get("/federation")
def get_federation(request: Request, gw: GatewayDep, session: Reader, done: str = "") -> Response:
    """Peers, our queries, and handover requests in both directions."""
    notice = {"handover": "引継ぎの依頼を送りました。", "answered": "引継ぎの依頼に回答しました。"}.get(done, "")
    return _overview(request, gw, session, notice=notice)


@router.post("/federation/queries")
def post_query(request: Request, gw: GatewayDep, session: Asker, peer: Annotated[str, Form(max_length=6)] = "") -> Response:
    """Ask a peer about our children who moved in from it (``service.ask``: logged; the peer answers handles, no identity)."""
    try:
        found = service.ask(gw, session.user, peer)
    except GatewayError as exc:
        if exc.status == 403:
            raise
        return _overview(request, gw, session, exc.status, error=exc.detail)
    return RedirectResponse(f"/ui/federation/queries/{found['exchange']}", status_code=303)


@router.get("/federation/queries/{exchange}")
def get_query(request: Request, gw: GatewayDep, session: Reader, exchange: str) -> Response:
    """One query's answers: per child our record token and, where the peer matched, the band, handle and contact."""
    found = service.results(gw, exchange)
    return render(request, "federation_query.html", session, q=found, labels=source_labels(gw), status_labels=STATUS, peer_names=_peer_names(gw),
                  may_ask=gw.policy.may(session.user.role, "reidentify.request").allowed)


@router.post("/federation/handovers")
def post_handover(request: Request, gw: GatewayDep, session: Asker, handle: Annotated[str, Form(max_length=64)] = "",
                  case_ref: Annotated[str, Form(max_length=128)] = "", message: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """Request a handover about the child behind ``handle`` from the peer that gave it."""
    if not case_ref.strip() or not message.strip():
        refused = HandoverIncomplete("引継ぎの依頼には案件番号と依頼の内容が必要です。")
        return _overview(request, gw, session, refused.status, error=refused.detail)
    try:
        delivery.send_handover_request(gw, session.user, handle, case_ref.strip(), message.strip())
    except GatewayError as exc:
        if exc.status == 403:
            raise
        return _overview(request, gw, session, exc.status, error=exc.detail)
    return RedirectResponse("/ui/federation?done=handover", status_code=303)


@router.post("/federation/handovers/{handover_id}/answer")
async def post_answer(request: Request, gw: GatewayDep, session: Asker, handover_id: str) -> Response:
    """Answer a peer's handover request with a message and the attributes we choose to share."""
    form = await request.form()
    message = str(form.get("message") or "").strip()
    shared = [str(a) for a in form.getlist("attributes")]
    if not message:
        refused = HandoverIncomplete("回答の内容を書いてください。")
        return _overview(request, gw, session, refused.status, error=refused.detail)
    try:
        delivery.send_handover_answer(gw, session.user, handover_id, message, shared)
    except GatewayError as exc:
        if exc.status == 403:
            raise
        return _overview(request, gw, session, exc.status, error=exc.detail)
    return RedirectResponse("/ui/federation?done=answered", status_code=303)
