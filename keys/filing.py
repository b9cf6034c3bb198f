"""The re-identification filing: what the gateway hands a caseworker for the escrow, as one model both services use.

The gateway builds its filing with :class:`RequestFiling` (``gateway.reidentify``)
and the escrow validates what it receives with the same class
(``escrow.reidentification``), so the two cannot drift apart; both services'
answers about a request extend :class:`RequestFields` (or the filing), so the
request's fields are listed here only. The filing
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
from pydantic import BaseModel, Field, ValidationError, field_validator

from keys import binding, envelope

#: The envelope kind of a filing.
KIND = "reidentification-filing"

#: A request id: what the gateway generates, and what goes into audit entries as a target.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"
_LINE = r"^[^\x00-\x1f\x7f]+$"  # one line of text: these fields go into audit entries


def _one_line(value: str) -> str:
    if problem := binding.text_problem(value):
        raise ValueError(problem)
    return value


class SealedRecordIn(BaseModel):
    """One record to open: its batch's header (``keys.seal.BatchHeader`` JSON), its token and its ciphertext."""

    batch_header: dict[str, Any]
    token: str = Field(min_length=1, max_length=200, pattern=_LINE)
    ciphertext: str = Field(min_length=1, max_length=65536, description="base64")

    @field_validator("token")
    @classmethod
    def _no_control_characters(cls, value: str) -> str:
        return _one_line(value)


class EvidenceIn(BaseModel):
    """The request's entry in the gateway's audit log, its position, an inclusion proof and a signed checkpoint."""

    entry: dict[str, Any]
    leaf_index: int = Field(ge=0)
    inclusion_proof: list[str] = Field(max_length=64, description="base64 SHA-256 hashes, RFC 9162 order")
    checkpoint: str = Field(max_length=4096, description="C2SP signed note")


class RequestFields(BaseModel):
    """The request itself as the gateway logged it (limits derived from its policy): the fields both services' answers repeat."""

    request_id: str = Field(pattern=ID_PATTERN)
    requester: str = Field(min_length=1, max_length=64, pattern=_LINE)
    purpose: str = Field(min_length=1, max_length=100, pattern=_LINE)
    legal_basis: str = Field(min_length=1, max_length=100, pattern=_LINE)
    case_ref: str = Field(min_length=1, max_length=100, pattern=_LINE)
    justification: str = Field(min_length=1, max_length=4000)
    max_records: int
    approvals_required: int

    @field_validator("requester", "purpose", "legal_basis", "case_ref")
    @classmethod
    def _no_control_characters(cls, value: str) -> str:
        return _one_line(value)

    @field_validator("justification")
    @classmethod
    def _justification_text(cls, value: str) -> str:
        if problem := binding.text_problem(value, multiline=True):
            raise ValueError(problem)
        return value


class RequestFiling(RequestFields):
    """A re-identification request as the gateway files it: the request, the sealed records and the gateway's audit evidence."""

    records: list[SealedRecordIn] = Field(max_length=1000)
    gateway_evidence: EvidenceIn


#: The filing's envelope kind: its manifest fields are exactly :class:`RequestFiling`'s (derived, never listed twice).
FILING_KIND = envelope.register(envelope.Kind(KIND, "gateway", tuple(RequestFiling.model_fields), False, "再識別の申請",
                                              envelope.FILING_UPGRADE))


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
