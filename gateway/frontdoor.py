"""The door of signed uploads: a submission's sender is looked up and its signature checked before its records are read.

A submission (or a federation submission) is JSON Lines whose first line is
``{"manifest": …, "signature": …}``; the signature covers the manifest, and
the manifest covers the records through their hash. So the first line alone
tells whether a registered agent signed the upload: :func:`check_signed_head`
parses that line only (after bounding its nesting depth), looks the agent up
and verifies the signature. Only then does ingest parse the records, so an
anonymous client cannot make the gateway build 100 MiB of Python objects.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.exceptions import InvalidSignature

from gateway import agents as _agents
from gateway.core import Gateway
from gateway.errors import BadSignature, MalformedSubmission
from keys.documents import canonical_json
from service.frontdoor.limits import MAX_DEPTH, json_depth


def check_signed_head(gw: Gateway, data: bytes) -> dict[str, Any]:
    """The manifest of ``data`` once its agent is known and its signature verifies; GatewayError (4xx) otherwise."""
    head = data.partition(b"\n")[0]
    depth = json_depth(head, MAX_DEPTH)
    if depth > MAX_DEPTH or depth < 0:
        raise MalformedSubmission(f"提出データの 1 行目（マニフェスト）が読めません（JSON の入れ子が {MAX_DEPTH} 段を超えているか、括弧が合いません）。")
    try:
        top = json.loads(head)
        manifest, signature = top["manifest"], base64.b64decode(top["signature"], validate=True)
        agent_id = manifest["agent_id"]
        signed = canonical_json(manifest)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise MalformedSubmission("提出データの 1 行目（マニフェスト）が読めません。1 行目は {\"manifest\": …, \"signature\": …} です。") from None
    if not isinstance(agent_id, str) or not 0 < len(agent_id) <= 64:
        raise MalformedSubmission("マニフェストの agent_id が 1〜64 文字の文字列ではありません。")
    agent = _agents.get_agent(gw, agent_id)
    try:
        agent.signing_key.verify(signature, signed)
    except InvalidSignature:
        raise BadSignature(f"提出データの署名をエージェント {agent_id} の登録済みの鍵で検証できません。") from None
    return manifest
