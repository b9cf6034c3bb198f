"""What the web UI knows of the escrow: its URL (``TSUNAGU_ESCROW_URL``) and its public status, read server-side.

The gateway only ever reads ``GET /api/v1/status`` and the status words of the
requests it logged (``POST /api/v1/request-states``), which need no sign-in and
carry no secret. Shares, passphrases, approvals and identities go to the
escrow directly (``tsunagu escrow …``, ``tsunagu casework …``), never through
the gateway.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from urllib.parse import urlsplit

import httpx

ENV = "TSUNAGU_ESCROW_URL"
_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class EscrowStatus:
    """The escrow's status, or why it could not be read (``error``, Japanese)."""

    url: str
    status: dict[str, Any] | None = None
    error: str = ""


def escrow_url() -> str:
    """The escrow's base URL as configured for this gateway (empty if none)."""
    return os.environ.get(ENV, "").strip().rstrip("/")


def escrow_origin() -> str:
    """The escrow's origin (scheme://host:port) for the CSP's form-action, or empty if none or not a URL."""
    parts = urlsplit(escrow_url())
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else ""


def request_states(request_ids: list[str]) -> dict[str, str] | None:
    """Each request's status at the escrow (``POST /api/v1/request-states``: status words only), or None if unreachable."""
    url = escrow_url()
    if not url or not request_ids:
        return {} if url else None
    try:
        response = httpx.post(f"{url}/api/v1/request-states", json={"request_ids": request_ids[:200]}, timeout=_TIMEOUT)
        response.raise_for_status()
        return dict(response.json()["states"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


def escrow_status() -> EscrowStatus:
    """``GET <escrow>/api/v1/status``: sealed or not, unseal progress, threshold."""
    url = escrow_url()
    if not url:
        return EscrowStatus(url, error=f"エスクローの URL が設定されていません。情報政策課に、ゲートウェイの環境変数 {ENV} の設定を依頼してください。")
    try:
        response = httpx.get(f"{url}/api/v1/status", timeout=_TIMEOUT)
        response.raise_for_status()
        status = response.json()
    except httpx.HTTPStatusError as exc:
        return EscrowStatus(url, error=f"エスクロー {url} が状態を返しません（HTTP {exc.response.status_code}）。")
    except (httpx.HTTPError, ValueError) as exc:
        return EscrowStatus(url, error=f"エスクロー {url} に接続できません（{type(exc).__name__}）。起動しているか、URL が正しいかを確認してください。")
    return EscrowStatus(url, status=status)
