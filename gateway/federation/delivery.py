"""Sending a signed federation message to its peer, or handing it back to be carried as a bundle file.

The API (``gateway.federation.api``) and the web UI (``gateway.web.routes.federation``)
both send handovers through these functions, so a handover request that cannot
be sent is withdrawn the same way wherever it was filed.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.core import Gateway
from gateway.errors import GatewayError
from gateway.federation import service
from gateway.identity import User

#: refusals of ``post_to_peer`` after which the message is carried as a file instead
_CARRY = ("peer_unreachable", "peer_no_url")


def deliver(gw: Gateway, peer: str, kind: str, data: bytes) -> dict[str, Any]:
    """Send to the peer; without a URL, or unreachable, the signed message is handed back (``bundle``) to carry as a file."""
    try:
        service.post_to_peer(gw, peer, kind, data)
    except GatewayError as exc:
        if exc.code not in _CARRY:
            raise
        return {"delivered": False, "reason": exc.detail, "bundle": json.loads(data)}
    return {"delivered": True}


def send_handover_request(gw: Gateway, user: User, handle: str, case_ref: str, message: str) -> tuple[str, str, dict[str, Any]]:
    """File a handover request with the peer that gave ``handle`` and send it: ``(id, peer, delivery)``.

    A request the peer refuses is withdrawn (with the peer's reason) before the refusal is raised.
    """
    rid, peer, data = service.request_handover(gw, user, handle, case_ref, message)
    try:
        delivery = deliver(gw, peer, "handover_request", data)
    except GatewayError as exc:
        service.withdraw_handover(gw, rid, exc.detail)
        raise
    return rid, peer, delivery


def send_handover_answer(gw: Gateway, user: User, handover_id: str, message: str, attributes: list[str]) -> tuple[str, dict[str, Any]]:
    """Answer a peer's handover request and send the answer: ``(peer, delivery)``."""
    peer, data = service.answer_handover(gw, user, handover_id, message, attributes)
    return peer, deliver(gw, peer, "handover_answer", data)
