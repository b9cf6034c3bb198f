"""The door of signed uploads: a submission's sender is looked up and its signature checked before its records are read.

A submission (or a federation submission) is an envelope (``keys.envelope``)
whose first line is ``{"manifest": …, "signature": …}``; the signature covers the manifest, and
the manifest covers the records through their hash. So the first line alone
tells whether a registered agent signed the upload: :func:`check_signed_head`
parses that line only (after bounding its nesting depth), looks the agent up
and verifies the signature. Only then does ingest parse the records, so an
anonymous client cannot make the gateway build 100 MiB of Python objects.
"""

from __future__ import annotations

from typing import Any

from gateway import agents as _agents
from gateway.core import Gateway
from gateway.errors import BadSignature, MalformedSubmission, UnknownEnvelopeVersion
from keys import envelope
from service.frontdoor.limits import MAX_DEPTH, json_depth

#: The envelope kinds an agent uploads through these doors.
_SIGNED_UPLOADS = ("submission", "federation-submission")


def check_signed_head(gw: Gateway, data: bytes) -> dict[str, Any]:
    """The manifest of ``data`` once its agent is known and its signature verifies; GatewayError (4xx) otherwise."""
    head = data.partition(b"\n")[0]
    depth = json_depth(head, MAX_DEPTH)
    if depth > MAX_DEPTH or depth < 0:
        raise MalformedSubmission(f"提出データの 1 行目（マニフェスト）が読めません（JSON の入れ子が {MAX_DEPTH} 段を超えているか、括弧が合いません）。")
    try:
        manifest, signature = envelope.read_head(head, _SIGNED_UPLOADS)
    except envelope.EnvelopeVersionError as exc:
        raise UnknownEnvelopeVersion(str(exc)) from None
    except envelope.EnvelopeError as exc:
        raise MalformedSubmission(f"提出データの 1 行目（マニフェスト）が読めません: {exc}") from None
    agent_id = manifest["agent_id"]
    if not isinstance(agent_id, str) or not 0 < len(agent_id) <= 64:
        raise MalformedSubmission("マニフェストの agent_id が 1〜64 文字の文字列ではありません。")
    agent = _agents.get_agent(gw, agent_id)
    try:
        envelope.verify(manifest, signature, agent.signing_key)
    except envelope.EnvelopeSignatureError:
        raise BadSignature(f"提出データの署名をエージェント {agent_id} の登録済みの鍵で検証できません。") from None
    return manifest
