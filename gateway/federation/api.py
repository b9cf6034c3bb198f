"""Routes: caseworkers' federation queries and handovers (sessions), and the signed endpoints of agents and peer gateways.

The signed endpoints (``/federation/submissions`` for the My Number agent,
``/federation/peer/*`` for peer gateways) authenticate by signature, not by
session; they are a machine protocol and stay out of the OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from gateway.api.deps import GatewayDep, require
from gateway.errors import GatewayError, TooLarge
from gateway.federation import delivery as delivery_
from gateway.federation import ingest, service
from gateway.frontdoor import check_signed_head
from gateway.identity import User
from service.api import Answer

router = APIRouter(prefix="/federation", tags=["federation"])

#: Asking a peer and filing or answering a handover use the re-identification request permission:
#: each discloses (to a peer) that a child of ours is of interest to casework.
ASK = "reidentify.request"
READ = "persons.read"
_MAX_BODY = 64 * 1024 * 1024


class QueryIn(BaseModel):
    """Ask ``peer`` about our children who moved in from it (all of them, or the given record tokens)."""

    peer: str = Field(pattern=r"^[0-9]{6}$")
    tokens: list[str] | None = None


class HandoverIn(BaseModel):
    """A handover request about the child behind ``handle``."""

    handle: str = Field(min_length=8, max_length=64)
    case_ref: str = Field(min_length=1, max_length=128)
    message: str = Field(min_length=1, max_length=2000)


class HandoverAnswerIn(BaseModel):
    """Our answer to a peer's handover request: free text and the attributes we choose to share."""

    message: str = Field(min_length=1, max_length=2000)
    attributes: list[str] = []


async def _body(request: Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > _MAX_BODY:
            raise TooLarge("メッセージが大きすぎます。")
        chunks.append(chunk)
    return b"".join(chunks)


def _signed(request: Request) -> None:
    request.state.event_logged = True  # the federation modules log their own refusals, with the peer


class QueryOut(Answer):
    """A query to a peer and, once answered, each item's match band and the handle to ask for a handover with."""

    exchange: str
    peer: str
    status: str
    created_at: str
    items: list[dict[str, Any]]


class HandoverOut(Answer):
    """A handover request, sent (``out``) or received (``in``), and its answer once given."""

    id: Any
    direction: str
    peer: str
    status: str
    created_at: str
    answered_at: str | None


class HandoverSent(Answer):
    """A handover request or answer, and whether it reached the peer (if not, ``reason`` and the ``bundle`` to carry)."""

    id: Any
    peer: str
    status: str
    delivered: bool


@router.post("/queries", response_model=QueryOut)
def post_query(body: QueryIn, gw: GatewayDep, user: Annotated[User, Depends(require(ASK))]) -> dict[str, Any]:
    """Ask a peer gateway about our transferred-in children; returns per child: match, band, handle, contact."""
    return service.ask(gw, user, body.peer, body.tokens)


@router.get("/queries/{exchange}", response_model=QueryOut)
def get_query(exchange: str, gw: GatewayDep, _user: Annotated[User, Depends(require(READ))]) -> dict[str, Any]:
    """One of our queries with its answers."""
    return service.results(gw, exchange)


@router.get("/handovers", response_model=list[HandoverOut])
def get_handovers(gw: GatewayDep, _user: Annotated[User, Depends(require(READ))],
                  direction: Annotated[str | None, Query(pattern="^(in|out)$")] = None) -> list[dict[str, Any]]:
    """Handover requests: ``in`` from peers (to answer), ``out`` ours (with the peers' answers)."""
    return service.list_handovers(gw, direction)


@router.post("/handovers", response_model=HandoverSent)
def post_handover(body: HandoverIn, gw: GatewayDep, user: Annotated[User, Depends(require(ASK))]) -> dict[str, Any]:
    """File a handover request with the peer that gave ``handle``."""
    rid, peer, delivery = delivery_.send_handover_request(gw, user, body.handle, body.case_ref, body.message)
    return {"id": rid, "peer": peer, "status": "open", **delivery}


@router.post("/handovers/{handover_id}/answer", response_model=HandoverSent)
def post_handover_answer(handover_id: str, body: HandoverAnswerIn, gw: GatewayDep,
                         user: Annotated[User, Depends(require(ASK))]) -> dict[str, Any]:
    """Answer a peer's handover request; the answer is sent to the peer."""
    peer, delivery = delivery_.send_handover_answer(gw, user, handover_id, body.message, body.attributes)
    return {"id": handover_id, "peer": peer, "status": "answered", **delivery}


@router.post("/submissions", include_in_schema=False)
async def post_submission(request: Request, gw: GatewayDep) -> dict[str, Any]:
    """The My Number agent's federation encodings (authenticated by the agent's signature)."""
    _signed(request)
    data = await _body(request)
    try:
        await run_in_threadpool(check_signed_head, gw, data)  # the agent and its signature before any record is read
    except GatewayError as exc:
        await run_in_threadpool(gw.event, "http", exc.status, exc.code, exc.detail, path="federation submission")
        raise
    return await run_in_threadpool(ingest.ingest, gw, data, "http")


@router.post("/peer/query", include_in_schema=False)
async def peer_query(request: Request, gw: GatewayDep) -> Response:
    """A peer gateway's signed query; the answer is a signed message."""
    _signed(request)
    answer = await run_in_threadpool(service.answer_query, gw, await _body(request), "federation")
    return Response(answer, media_type="application/json")


@router.post("/peer/handover", include_in_schema=False)
async def peer_handover(request: Request, gw: GatewayDep) -> dict[str, Any]:
    """A peer gateway's signed handover request."""
    _signed(request)
    return await run_in_threadpool(service.receive_handover, gw, await _body(request), "federation")


@router.post("/peer/handover-answer", include_in_schema=False)
async def peer_handover_answer(request: Request, gw: GatewayDep) -> dict[str, Any]:
    """A peer gateway's signed answer to our handover request."""
    _signed(request)
    return await run_in_threadpool(service.receive_handover_answer, gw, await _body(request), "federation")
