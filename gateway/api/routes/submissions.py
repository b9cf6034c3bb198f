"""Submissions: agents push signed JSON Lines here (authenticated by the signature, not a session)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from gateway.api.deps import GatewayDep, require
from gateway.errors import (
    BadSignature,
    GatewayError,
    MalformedRequest,
    RevokedAgentRequest,
    StaleRequest,
    TooLarge,
    UnknownEnvelopeVersion,
    UnsupportedMediaType,
)
from gateway.frontdoor import check_signed_head
from gateway.identity import User
from gateway.agents import get_agent, recent_submissions
from gateway.ingest import agent_state, ingest
from keys.submission import (
    MalformedSubmissionError,
    SubmissionSignatureError,
    SubmissionVersionError,
    read_state_request,
    verify_state_request,
)
from service.api import Answer

router = APIRouter(prefix="/submissions", tags=["submissions"])

MEDIA_TYPE = "application/x-ndjson"


class Ingested(Answer):
    """What became of a submission: its status, id, how many records were accepted, each refused record and why, the sequence number."""

    status: str
    submission_id: int | None
    accepted: int
    refused: list[dict[str, Any]]
    sequence: int | None


class AgentState(Answer):
    """The gateway's view of an agent: its last accepted sequence and content hash, and the head of each snapshot."""

    agent_id: str
    sequence: int
    content_sha256: str
    received_at: str | None
    head: dict[str, Any] | None


class SubmissionOut(Answer):
    """A received submission (metadata only)."""

    id: int
    agent_id: str
    sequence: int
    network: str
    source: str
    schema_version: Any
    linkage_key_id: str
    received_at: datetime
    channel: str
    record_count: int
    accepted: Any


@router.post("", response_model=Ingested, openapi_extra={"requestBody": {"required": True, "content": {MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}}})
async def post_submission(request: Request, gw: GatewayDep) -> dict[str, Any]:
    """Ingest one signed submission (the agent's signature authenticates it); replays 409, the same one again 200 duplicate."""
    try:
        data = await _read_body(request, gw)
        await run_in_threadpool(_authenticate, gw, data)
        result = await run_in_threadpool(ingest, gw, data, "http")
    except GatewayError:
        request.state.event_logged = True
        raise
    return result.to_json()


def _authenticate(gw: GatewayDep, data: bytes) -> None:
    """The agent known and its signature good, before ingest reads a single record (refusals logged like ingest's)."""
    try:
        check_signed_head(gw, data)
    except GatewayError as exc:
        gw.event("http", exc.status, exc.code, exc.detail)
        raise


async def _read_body(request: Request, gw: GatewayDep) -> bytes:
    limit = gw.settings.max_submission_bytes
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    error = None
    if content_type != MEDIA_TYPE:
        error = UnsupportedMediaType(f"提出データは Content-Type: {MEDIA_TYPE} で送ってください（受信: {content_type or 'なし'}）。")
    elif int(request.headers.get("content-length") or 0) > limit:
        error = TooLarge(f"提出データが上限 {limit} バイトを超えています。")
    if error is None:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                error = TooLarge(f"提出データが上限 {limit} バイトを超えています。")
                break
            chunks.append(chunk)
    if error is not None:
        await run_in_threadpool(gw.event, "http", error.status, error.code, error.detail)
        raise error
    return b"".join(chunks)


#: How far a state request's time may be from the gateway's clock.
STATE_REQUEST_SKEW = timedelta(minutes=15)
_STATE_REQUEST_BYTES = 4096


@router.post("/state", response_model=AgentState, openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}})
async def post_state(request: Request, gw: GatewayDep) -> dict[str, Any]:
    """What the gateway has accepted from the agent that signed the request: last sequence, content hash, chain head, and
    the current snapshot of each source it owns. The agent reconciles its state with this answer before it sends."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _STATE_REQUEST_BYTES:
            raise TooLarge("状態の問い合わせが大きすぎます。")
    return await run_in_threadpool(_state, gw, body)


def _state(gw: Any, body: bytes) -> dict[str, Any]:
    try:
        req, signature = read_state_request(body)
    except SubmissionVersionError as exc:
        raise UnknownEnvelopeVersion(str(exc)) from None
    except MalformedSubmissionError as exc:
        raise MalformedRequest(str(exc)) from None
    agent = get_agent(gw, req["agent_id"])
    try:
        verify_state_request(req, signature, agent.signing_key)
    except SubmissionSignatureError as exc:
        raise BadSignature(str(exc)) from None
    if agent.status != "enrolled":
        raise RevokedAgentRequest(f"エージェント {agent.agent_id} は失効しています。")
    try:
        at = datetime.fromisoformat(req["at"]).astimezone(timezone.utc)
    except ValueError:
        raise MalformedRequest("状態の問い合わせの時刻が読めません。") from None
    if abs(datetime.now(timezone.utc) - at) > STATE_REQUEST_SKEW:
        raise StaleRequest("状態の問い合わせの時刻がゲートウェイの時計と 15 分以上ずれています。エージェントの機械の時計を合わせてください。")
    return agent_state(gw, agent.agent_id)


@router.get("", response_model=list[SubmissionOut])
def get_submissions(gw: GatewayDep, _user: Annotated[User, Depends(require("submissions.read"))],
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    """The latest submissions, newest first (no record contents)."""
    return recent_submissions(gw, limit)
