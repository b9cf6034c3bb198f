"""The escrow's refusals: an HTTP status, a stable code and a Japanese message safe to show and to log."""

from __future__ import annotations


class EscrowError(Exception):
    """A request or command the escrow refuses; ``detail`` never holds a secret or an identity."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        """``status``: HTTP status; ``code``: machine-readable; ``detail``: Japanese, for staff."""
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        #: set once the refusal is in the escrow's audit log, so it is logged exactly once
        self.logged = False


SEALED_DETAIL = "エスクローは封印されています（鍵管理者による開封が必要です）"
