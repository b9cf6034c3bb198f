"""The escrow's refusals: an HTTP status, a stable code and a Japanese message safe to show and to log."""

from __future__ import annotations

from service.errors import Refusal


class EscrowError(Refusal):
    """A request or command the escrow refuses; ``detail`` never holds a secret or an identity."""


SEALED_DETAIL = "エスクローは封印されています（鍵管理者による開封が必要です）"
