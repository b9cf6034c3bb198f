"""The signed submission: the one contract between an agent and the gateway (envelope kind ``submission``).

A submission is an envelope (``keys.envelope``): UTF-8 JSON Lines, so the
same bytes travel by HTTPS push and as a carried bundle file that a file
sanitiser (無害化) passes as plain text:

    line 1      {"manifest": {"format": "tsunagu-envelope", "version": 2, "kind": "submission", ...}, "signature": "<base64 Ed25519>"}
    line 2..n+1 one record each: {"t": token, "c": clk, "p": present, "b": [blocks], "s": sealed, "a": {attributes}}

* ``manifest`` names the envelope's format, version and kind, the agent and its signing key id,
  municipality, network, source, the encoding schema version, the linkage key
  id, the escrow key id, the sequence number, the batch id, the creation time,
  the mode (``snapshot``: the submission replaces the source's previous one, so
  deletions become visible), the record count, the sealed batch's header and
  ``content_sha256``, the SHA-256 of every byte after the first newline.
* optional chain fields (the agent's own submissions carry them):
  ``previous`` the :func:`manifest_sha256` of the agent's previous accepted
  submission ("" for its first), so the submissions of one agent form a hash
  chain and two copies of one agent sending from the same point are a fork the
  gateway refuses; ``instance`` names the copy of the agent (machine and
  folder) and ``instance_label`` says it for people (``host:folder``);
  ``moved_from`` names the instance the agent was moved from, set only after
  an operator said so (``tsunagu agent resync``): without it the gateway
  refuses a submission from another copy than the one that sent the last.
* optional ``part`` and ``parts`` (1 ≤ part ≤ parts): one snapshot too large
  for one submission travels as ``parts`` signed submissions with the same
  ``batch_id`` and seal header, consecutive sequence numbers, in order; the
  gateway replaces the source's records only when the last part arrives.
* ``signature`` is the agent's Ed25519 signature over the manifest
  (``keys.envelope.verify``), so it covers the records through the hash.
* each record: ``t`` the record token (a keyed hash of the department's record
  id), ``c`` the base64 encoding (CLK) under ``schema_version``, ``p`` the
  presence flags, ``b`` the keyed blocking tokens as 16-digit hex ("" = none),
  ``s`` the base64 escrow-sealed identity, ``a`` the attributes the policy lets
  this network and source send (strings).

Nothing in a submission names a child in plaintext: the gateway can store it
as it is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from keys import envelope
from keys.documents import canonical_json
from keys.errors import KeysError

_b64 = binascii.a2b_base64

#: This message's kind in the envelope (``keys.envelope``).
KIND = "submission"
MODES = ("snapshot",)


#: Most parts one snapshot may travel in.
MAX_PARTS = 10_000

#: Optional manifest fields of the hash chain (see the module docstring).
CHAIN_FIELDS = ("previous", "instance", "instance_label", "moved_from")


def manifest_sha256(manifest: dict[str, Any]) -> str:
    """The hash a later submission names as its ``previous``: SHA-256 of the canonical manifest (covers the records)."""
    return hashlib.sha256(canonical_json(manifest)).hexdigest()


class SubmissionError(KeysError):
    """A submission could not be read or trusted; the message says why."""


class MalformedSubmissionError(SubmissionError):
    """The bytes are not a submission of a known format and version."""


class SubmissionVersionError(MalformedSubmissionError):
    """The submission is in an old (or unknown) envelope version: the agent must be upgraded and the data sent again."""


class ContentHashError(SubmissionError):
    """The records do not match the manifest's content hash or record count."""


class SubmissionSignatureError(SubmissionError):
    """The signature does not verify under the agent's registered key."""


@dataclass(slots=True)
class SubmittedRecord:
    """One record as it travels: no plaintext identity."""

    token: str
    clk: bytes
    present: int
    blocks: list[int]
    sealed: bytes
    attributes: dict[str, str] = field(default_factory=dict)

    def to_line(self) -> bytes:
        """This record as one JSON line (without the newline)."""
        return json.dumps(
            {
                "t": self.token,
                "c": base64.b64encode(self.clk).decode("ascii"),
                "p": self.present,
                "b": [f"{b:016x}" if b else "" for b in self.blocks],
                "s": base64.b64encode(self.sealed).decode("ascii"),
                "a": self.attributes,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")

    @classmethod
    def from_line(cls, line: bytes, number: int) -> "SubmittedRecord":
        """Parse one record line; ``number`` is its line number for the error message."""
        try:
            # The gateway parses ~100,000 lines a submission: orjson and binascii
            # directly, without json.loads' and b64decode's wrappers.
            d = orjson.loads(line)
            attributes = d.get("a") or {}
            if type(attributes) is not dict:
                raise ValueError("attributes must be an object")
            for v in attributes.values():
                if type(v) is not str:
                    raise ValueError("attributes must be strings")
            return cls(
                str(d["t"]),
                _b64(d["c"], strict_mode=True),
                int(d["p"]),
                [int(b, 16) if b else 0 for b in d["b"]],
                _b64(d["s"], strict_mode=True),
                attributes,
            )
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, orjson.JSONDecodeError) as exc:
            raise MalformedSubmissionError(f"提出データの {number} 行目の記録が読めません（{type(exc).__name__}）。") from None


@dataclass(slots=True)
class Submission:
    """A parsed submission: manifest, signature and records (signature not yet checked)."""

    manifest: dict[str, Any]
    signature: bytes
    records: list[SubmittedRecord]

    def verify(self, public_key: Ed25519PublicKey) -> None:
        """Check the signature over the manifest; raises :class:`SubmissionSignatureError`."""
        try:
            envelope.verify(self.manifest, self.signature, public_key)
        except envelope.EnvelopeSignatureError:
            raise SubmissionSignatureError(
                f"提出データ（エージェント {self.manifest.get('agent_id')}、連番 {self.manifest.get('sequence')}）の署名を検証できません。"
            ) from None


def write_submission(manifest: dict[str, Any], records: Iterable[SubmittedRecord], signing_key: Ed25519PrivateKey) -> bytes:
    """Serialise and sign; ``manifest`` needs every field but format, version, kind, record_count and content_sha256."""
    lines = [r.to_line() for r in records]
    body = b"\n".join(lines) + (b"\n" if lines else b"")
    return submission_head(manifest, len(lines), hashlib.sha256(body).hexdigest(), signing_key) + b"\n" + body


def submission_head(manifest: dict[str, Any], record_count: int, content_sha256: str, signing_key: Ed25519PrivateKey) -> bytes:
    """The signed first line of a submission whose body (``record_count`` lines) hashes to ``content_sha256``.

    For a writer that streams the body: the submission is this line, a newline, then the body.
    """
    if manifest.get("mode") not in MODES:
        raise MalformedSubmissionError(f"提出モード「{manifest.get('mode')}」は使えません（{', '.join(MODES)}）。")
    with _as_submission_error():
        return envelope.head(KIND, manifest, signing_key, record_count, content_sha256)


def read_submission(data: bytes, max_records: int | None = None) -> Submission:
    """Parse a submission and check its content hash and record count (not its signature)."""
    with _as_submission_error():
        env = envelope.open_envelope(data, (KIND,), max_records)
    manifest = env.manifest
    previous = manifest.get("previous", "")
    if not isinstance(previous, str) or (previous and (len(previous) != 64 or any(c not in "0123456789abcdef" for c in previous))):
        raise MalformedSubmissionError("マニフェストの previous（直前の提出のハッシュ）が 64 桁の 16 進数ではありません。")
    for name, limit in (("instance", 64), ("instance_label", 200), ("moved_from", 64)):
        if not isinstance(manifest.get(name, ""), str) or len(manifest.get(name, "")) > limit:
            raise MalformedSubmissionError(f"マニフェストの {name} が {limit} 文字以下の文字列ではありません。")
    part, parts = manifest.get("part", 1), manifest.get("parts", 1)
    if (type(part) is not int or type(parts) is not int or not 1 <= part <= parts <= MAX_PARTS):
        raise MalformedSubmissionError(f"マニフェストの part / parts（分割提出の番号と数）が 1 ≤ part ≤ parts ≤ {MAX_PARTS} の整数ではありません。")
    records = [SubmittedRecord.from_line(line, n) for n, line in enumerate(env.lines, start=2)]
    return Submission(manifest, env.signature, records)


@contextmanager
def _as_submission_error() -> Iterator[None]:
    """The envelope's errors as this module's (callers match on these classes)."""
    try:
        yield
    except envelope.EnvelopeVersionError as exc:
        raise SubmissionVersionError(str(exc)) from None
    except envelope.EnvelopeContentError as exc:
        raise ContentHashError(str(exc)) from None
    except envelope.EnvelopeError as exc:
        raise MalformedSubmissionError(str(exc)) from None


#: The kind of the agent's signed question "what have you accepted from me?".
STATE_KIND = "agent-state-request"


def write_state_request(agent_id: str, signing_key: Ed25519PrivateKey, at: str) -> bytes:
    """The agent's signed question "what have you accepted from me?" (``at``: ISO time, limits its reuse)."""
    return envelope.seal(STATE_KIND, {"agent_id": agent_id, "at": at}, (), signing_key)


def read_state_request(data: bytes) -> tuple[dict[str, Any], bytes]:
    """The request and its signature (not yet verified); raises :class:`MalformedSubmissionError`."""
    with _as_submission_error():
        env = envelope.open_envelope(data.strip(), (STATE_KIND,))
    request = env.manifest
    if not isinstance(request.get("agent_id"), str) or not isinstance(request.get("at"), str):
        raise MalformedSubmissionError("状態の問い合わせの形式が正しくありません（agent_id と at は文字列です）。")
    return request, env.signature


def verify_state_request(request: dict[str, Any], signature: bytes, public_key: Ed25519PublicKey) -> None:
    """Check the state request's signature; raises :class:`SubmissionSignatureError`."""
    try:
        envelope.verify(request, signature, public_key)
    except envelope.EnvelopeSignatureError:
        raise SubmissionSignatureError(f"エージェント {request.get('agent_id')} の状態の問い合わせの署名を検証できません。") from None
