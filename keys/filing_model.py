"""The re-identification filing's fields, as pydantic models: what the gateway files and the escrow validates.

Kept apart from :mod:`keys.filing` (which signs and opens filings) so that
:mod:`keys.envelope` derives the manifest fields of its ``reidentification-filing``
kind from :class:`RequestFiling` itself: the fields are listed here only.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from keys import binding

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
