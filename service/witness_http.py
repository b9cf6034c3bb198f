"""The tlog-witness HTTP interface (``POST <prefix>/add-checkpoint``) of a :class:`transparency.tlog_witness.Witness`, for any FastAPI app.

Mounted by the gateway (witnessing the escrow), the escrow (witnessing the
gateway) and ``tsunagu audit witness serve`` (an auditor's own witness). As
in C2SP tlog-witness, a request needs no login: the witness authenticates
the checkpoint itself, accepting only one signed by the log key it was
configured to trust for that origin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from transparency.tlog_witness import MAX_REQUEST_BYTES, Witness


def witness_router(get_witness: Callable[[], Witness]) -> APIRouter:
    """A router with ``POST /witness/add-checkpoint`` answering for the witness ``get_witness()`` returns."""
    router = APIRouter(prefix="/witness", tags=["witness"])

    @router.post("/add-checkpoint", response_class=PlainTextResponse, name="witness.add_checkpoint",
                 summary="C2SP tlog-witness add-checkpoint: cosign a checkpoint after its consistency proof")
    async def add_checkpoint(request: Request) -> PlainTextResponse:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_REQUEST_BYTES:
                return PlainTextResponse("要求が大きすぎます。\n", status_code=413)
        # The witness takes a file lock and fsyncs its state: off the event loop.
        answer = await run_in_threadpool(get_witness().add_checkpoint, bytes(body))
        return PlainTextResponse(answer.body, status_code=answer.status, media_type=answer.content_type)

    @router.get("/latest", response_class=PlainTextResponse, name="witness.latest",
                summary="The latest checkpoint this witness cosigned for a log (log signature and cosignature)")
    async def latest(origin: str) -> PlainTextResponse:
        note = get_witness().latest_note(origin)
        if note is None:
            return PlainTextResponse("この証人はそのログにまだ連署していません。\n", status_code=404)
        return PlainTextResponse(note)

    return router


def witness_app(folder: Path) -> FastAPI:
    """A stand-alone witness service (an auditor's own witness in ``folder``): only ``POST /witness/add-checkpoint``."""
    Witness.open(folder)  # refuse to start without a witness
    app = FastAPI(title="tsunagu witness", version="1", description="監査ログの証人（C2SP tlog-witness）")
    # Reopened per request, so logs trusted later with `tsunagu audit witness trust` count at once.
    app.include_router(witness_router(lambda: Witness.open(folder)))

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
