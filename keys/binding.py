"""What the gateway's audit entry for a re-identification request commits to, and the free-text rules of a filing.

The gateway logs ``reidentify.request`` with the request's requester (actor),
request id (target), purpose, legal basis and case reference in the entry's
own fields, and everything else that decides what may be opened in its
outcome, in one fixed format (:func:`accepted_outcome`)::

    accepted: person=<pseudonym> records=<n> records_sha256=<hex> justification_sha256=<hex> approvals=<k> max_records=<m>

``records_sha256`` (:func:`records_digest`) is a SHA-256 over the sorted list
of the sealed records handed out — each record's batch id, token, the SHA-256
of its batch header and of its ciphertext — so a filing that lists one record
more, one less or another one no longer matches. A refusal is logged as
``refused: <code>`` and is never evidence. The escrow (``escrow.reidentification``)
and the auditors' joint report (``keys.audit_report``) both read the outcome
back with :func:`parse_outcome`; both sides share this module so that they
cannot drift apart.

The same module holds the free-text rule of a filing (:func:`text_problem`):
these fields go into permanent, signed logs and onto an approver's screen, so
control characters — including the line and paragraph separators U+2028 and
U+2029 and NEL (U+0085), which split lines in many readers — and invisible
format characters (bidirectional overrides, zero-width characters) are
refused at the door rather than escaped later.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable

from keys import labels
from keys.documents import canonical_json

ACCEPTED = "accepted"
_OUTCOME = re.compile(
    r"^accepted: person=(?P<person>[A-Za-z0-9_.:-]{1,64}) records=(?P<records>[0-9]{1,6})"
    r" records_sha256=(?P<records_sha256>[0-9a-f]{64}) justification_sha256=(?P<justification_sha256>[0-9a-f]{64})"
    r" approvals=(?P<approvals>[0-9]{1,3}) max_records=(?P<max_records>[0-9]{1,6})$"
)
# Cc: C0/C1 controls (incl. U+0085); Cf: format characters (bidi overrides, zero-width);
# Zl/Zp: U+2028/U+2029; Cs/Co: surrogates and private use.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co"})


@dataclass(frozen=True)
class Binding:
    """The parsed outcome of an accepted gateway entry: exactly what the escrow may open for that request."""

    person: str
    records: int
    records_sha256: str
    justification_sha256: str
    approvals: int
    max_records: int


def sha256_hex(data: bytes) -> str:
    """SHA-256 as lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def records_digest(records: Iterable[tuple[str, str, dict, bytes]]) -> str:
    """SHA-256 over the sorted (batch id, token, header hash, ciphertext hash) of each sealed record.

    ``records`` yields ``(batch_id, token, batch_header_json, ciphertext)``;
    the header is hashed as canonical JSON of ``keys.seal.BatchHeader.to_json()``.
    """
    rows = sorted([batch_id, token, sha256_hex(canonical_json(header)), sha256_hex(ciphertext)]
                  for batch_id, token, header, ciphertext in records)
    return sha256_hex(labels.REIDENTIFY_RECORDS + canonical_json(rows))


def justification_digest(justification: str) -> str:
    """SHA-256 of the justification's UTF-8 text, exactly as filed."""
    return sha256_hex(labels.REIDENTIFY_JUSTIFICATION + justification.encode("utf-8"))


def accepted_outcome(binding: Binding) -> str:
    """The outcome the gateway writes for an accepted request (parsed back by :func:`parse_outcome`)."""
    text = (f"{ACCEPTED}: person={binding.person} records={binding.records} records_sha256={binding.records_sha256}"
            f" justification_sha256={binding.justification_sha256} approvals={binding.approvals} max_records={binding.max_records}")
    if parse_outcome(text) != binding:
        raise ValueError("the binding does not fit the outcome format")
    return text


def parse_outcome(outcome: str) -> Binding | None:
    """The binding of an accepted entry, or None for anything else (a refusal, an older or edited entry)."""
    m = _OUTCOME.match(outcome)
    if m is None:
        return None
    return Binding(m["person"], int(m["records"]), m["records_sha256"], m["justification_sha256"],
                   int(m["approvals"]), int(m["max_records"]))


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` may not be filed (Japanese, naming the character), or None if it may.

    ``multiline`` allows line feeds and tabs (a justification typed in a text
    area; normalise CR LF first with :func:`normalise_newlines`).
    """
    for position, char in enumerate(value, start=1):
        if multiline and char in "\n\t":
            continue
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            name = unicodedata.name(char, "")
            return (f"{position} 文字目に使えない制御文字 U+{ord(char):04X}{f'（{name}）' if name else ''} が含まれています。"
                    + ("改行とタブ以外の" if multiline else "改行・タブを含め、") + "制御文字や見えない書式文字は削除して入力し直してください。")
    return None


def normalise_newlines(value: str) -> str:
    """CR LF and lone CR as LF (what a browser's text area sends), so only LF reaches :func:`text_problem`."""
    return value.replace("\r\n", "\n").replace("\r", "\n")
