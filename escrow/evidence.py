"""Is the request in the gateway's audit log? A signed checkpoint, an RFC 9162 inclusion proof and a matching entry.

The gateway logs every re-identification request before it files it with the
escrow (action ``reidentify.request``, target = the request id, with the
request's purpose and case reference, actor = the requesting caseworker).
The escrow checks, with the gateway verifier key it was set up with:

1. the checkpoint note is signed by that key (C2SP signed note);
2. the entry, hashed as an RFC 9162 leaf, is at ``leaf_index`` of the tree
   the checkpoint commits to (inclusion proof, :func:`transparency.rfc9162.verify_inclusion`);
3. the entry says what the request says.

So a request the gateway did not log, or logged differently, is refused, and
an edited entry or a checkpoint signed by any other key does not verify.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from transparency import rfc9162 as merkle
from keys.audit import AuditEntry
from transparency.tlog_checkpoint import Checkpoint, CheckpointError, Verifier, verify_checkpoint
from keys.errors import AuditEntryError

from escrow.errors import EscrowError, NotInGatewayLog

REQUEST_ACTION = "reidentify.request"


@dataclass(frozen=True)
class GatewayEvidence:
    """What the gateway sends along with a request: its audit entry, where it sits, and a signed tree head."""

    entry: dict[str, Any]
    leaf_index: int
    inclusion_proof: list[str]
    checkpoint: str


def verify_evidence(evidence: GatewayEvidence, verifier: Verifier, expected: dict[str, str]) -> Checkpoint:
    """Check that the entry is in the gateway's signed log and matches ``expected`` field by field.

    Returns the verified checkpoint; raises :class:`EscrowError` (403) naming the first check that failed.
    """
    try:
        checkpoint = verify_checkpoint(evidence.checkpoint, verifier)
    except CheckpointError as exc:
        raise _refused(f"ゲートウェイのチェックポイントを検証できません: {exc}") from None
    try:
        entry = AuditEntry.from_json(evidence.entry)
    except AuditEntryError as exc:
        raise _refused(f"ゲートウェイの監査記録の形式が違います: {exc}") from None
    try:
        proof = [base64.b64decode(p, validate=True) for p in evidence.inclusion_proof]
        merkle.verify_inclusion(entry.leaf_hash(), evidence.leaf_index, checkpoint.size, proof, checkpoint.root)
    except (binascii.Error, ValueError) as exc:
        raise _refused("包含証明の要素が base64 として読めません。") from exc
    except merkle.ProofError as exc:
        raise _refused(f"申請の監査記録が、署名されたゲートウェイの監査ログ（{checkpoint.size} 件）に含まれていません: {exc}") from None
    found = entry.to_json()
    for name, value in expected.items():
        if found[name] != value:
            # The filed value is not echoed: the reason goes into the escrow's permanent log, and a
            # mismatching value is exactly what did not pass the gateway's door (it may be a name).
            raise _refused(f"ゲートウェイの監査記録の {name}（{found[name]!r}）が申請の内容と一致しません。")
    return checkpoint


def _refused(reason: str) -> EscrowError:
    return NotInGatewayLog(f"申請がゲートウェイの監査ログで確認できないため受け付けません。{reason}")
