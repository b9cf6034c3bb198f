"""The gateway's refusals: each carries an HTTP status, a stable code and a Japanese message safe to show and log."""

from __future__ import annotations


class GatewayError(Exception):
    """A request or command the gateway refuses; ``detail`` never contains identity data or secrets."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        """``status``: HTTP status; ``code``: machine-readable; ``detail``: Japanese, for staff."""
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
