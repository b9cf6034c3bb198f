"""The one exception every refusal of either service is raised as.

A module anywhere in a service raises a :class:`Refusal` (in practice the
service's own subclass, :class:`gateway.errors.GatewayError` or
:class:`escrow.errors.EscrowError`) with an HTTP status, a stable code and a
Japanese message, without knowing about HTTP. Each service's app turns every
``Refusal`` into its HTTP answer in one exception handler
(``gateway/api/main.py``, ``escrow/api/app.py``; the web UIs in their
``web/app.py``), which is also where the refusal is logged.
"""

from __future__ import annotations


class Refusal(Exception):
    """A request or command a service refuses; ``detail`` never contains identity data or secrets."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        """``status``: HTTP status; ``code``: machine-readable; ``detail``: Japanese, for staff."""
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        #: set once the refusal is in the service's audit log (the escrow logs each exactly once)
        self.logged = False
