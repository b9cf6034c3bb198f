"""The re-identification filing: what the gateway hands a caseworker for the escrow, as one model both services use.

The gateway builds its filing with :class:`RequestFiling` (``gateway.reidentify``)
and the escrow validates what it receives with the same class
(``escrow.reidentification``), so the two cannot drift apart; both services'
answers about a request extend :class:`RequestFields` (or the filing), so the
request's fields are listed once (the models are in :mod:`keys.filing_model`,
which the envelope's kind derives its fields from). The filing
travels as an envelope of kind ``reidentification-filing`` (``keys.envelope``):
its fields are the manifest, signed by the gateway's key (:func:`seal`), and
the escrow opens it with the gateway's public key (:func:`open_filing`) before
anything else, so a filing edited on the way (by the caseworker who carries it,
or anyone else) is refused whole. Inside, the gateway's audit entry
(``gateway_evidence``: the entry, an inclusion proof and a signed checkpoint)
shows that the request was logged before it was filed (``escrow.evidence``), and
the entry's outcome binds exactly the records and justification filed
(``keys.binding``).
"""

from __future__ import annotations

from typing import Any

import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, Field, ValidationError

from keys import envelope
from keys.filing_model import ID_PATTERN, EvidenceIn, RequestFields, RequestFiling, SealedRecordIn

__all__ = ["ID_PATTERN", "KIND", "EvidenceIn", "FilingEnvelope", "FilingError", "RequestFields", "RequestFiling", "SealedRecordIn",
           "open_filing", "seal"]

#: The envelope kind of a filing.
KIND = "reidentification-filing"

class FilingEnvelope(BaseModel):
    """A filing as it travels (the gateway's answer, the escrow's request body): the envelope's one line, parsed."""

    manifest: dict[str, Any] = Field(description="format, version, kind ``reidentification-filing`` and the fields of "
                                                 ":class:`RequestFiling`")
    signature: str = Field(max_length=200, description="base64 Ed25519 signature by the gateway's key")


class FilingError(envelope.EnvelopeError):
    """The filing's fields are not a filing (after its envelope was read and its signature verified)."""


def seal(filing: RequestFiling, signing_key: Ed25519PrivateKey) -> dict[str, Any]:
    """The filing as a signed envelope (a JSON object: ``manifest`` holds the filing's fields, ``signature`` the gateway's)."""
    line = envelope.head(KIND, filing.model_dump(mode="json"), signing_key)
    return dict(json.loads(line))


def open_filing(data: Any, gateway_key: Ed25519PublicKey) -> RequestFiling:
    """Read a filing envelope (a parsed JSON object, or its bytes), verify the gateway's signature, then its fields.

    Raises :class:`keys.envelope.EnvelopeVersionError` for an old or unknown version,
    :class:`keys.envelope.EnvelopeSignatureError` for a signature by another key or
    an edited filing, and :class:`FilingError` / :class:`keys.envelope.EnvelopeError`
    for anything that is not a filing; each message says what to do.
    """
    if isinstance(data, (bytes, bytearray)):
        line = bytes(data).strip()
    else:
        line = json.dumps(data, ensure_ascii=False).encode("utf-8")
    manifest, signature = envelope.read_head(line, (KIND,))
    envelope.verify(manifest, signature, gateway_key, "ゲートウェイ")
    fields = {k: v for k, v in manifest.items() if k not in ("format", "version", "kind")}
    try:
        return RequestFiling.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise FilingError(f"申請の項目 {where} が正しくありません（{first['msg']}）。ゲートウェイの「再識別の申請」から"
                          "申請し直してください。") from None
