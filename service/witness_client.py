"""The log's side of C2SP tlog-witness over HTTP: POST an add-checkpoint request to a witness with httpx.

:mod:`transparency.tlog_witness` is pure; it takes how to reach a witness as
a ``post`` argument. The services and ``tsunagu audit`` pass :func:`http_post`;
tests pass a :class:`~transparency.tlog_witness.Witness` directly.
"""

from __future__ import annotations

import httpx

from transparency.tlog_witness import Post, WitnessError, WitnessResponse


def http_post(timeout: float = 10.0) -> Post:
    """POST an add-checkpoint body over HTTP (httpx), answering as a :class:`~transparency.tlog_witness.WitnessResponse`."""

    def post(url: str, body: bytes) -> WitnessResponse:
        try:
            r = httpx.post(url, content=body, timeout=timeout)
        except httpx.HTTPError as exc:
            raise WitnessError(f"証人（{url}）に接続できません: {type(exc).__name__}") from exc
        return WitnessResponse(r.status_code, r.text, r.headers.get("content-type", ""))

    return post
