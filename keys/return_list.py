"""The return list: record tokens a caseworker decided to act on, signed by the gateway for the department that owns them.

It is an envelope of kind ``return-list`` (``keys.envelope``), like a
submission in the other direction:

    line 1      {"manifest": {"format": "tsunagu-envelope", "version": 2, "kind": "return-list", ...}, "signature": "<base64 Ed25519>"}
    line 2..n+1 one record each: {"t": record token}

``manifest`` names the envelope's format, version and kind, the list id, the municipality, the
source whose records these are, the action asked for (``line_notice``,
``home_visit`` …), the purpose of use, the creation time, the record count and
``content_sha256`` over every byte after the first newline; the gateway's
signature over the manifest covers the tokens through the hash. No identity is in it: only the department's own record
tokens, which only that department's agent can turn back into its records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from keys import envelope
from keys.errors import KeysError

#: This message's kind in the envelope (``keys.envelope``).
KIND = "return-list"


class ReturnListError(KeysError):
    """A return list cannot be read or trusted; the message says why."""


@dataclass(frozen=True, slots=True)
class ReturnList:
    """A parsed and verified return list."""

    manifest: dict[str, Any]
    tokens: tuple[str, ...]


def write_return_list(manifest: dict[str, Any], tokens: Sequence[str], signing_key: Ed25519PrivateKey) -> bytes:
    """Serialise and sign; ``manifest`` needs every field but format, version, kind, record_count and content_sha256."""
    try:
        return envelope.seal(KIND, manifest, (json.dumps({"t": t}, separators=(",", ":")).encode("ascii") for t in tokens),
                             signing_key)
    except envelope.EnvelopeError as exc:
        raise ReturnListError(str(exc)) from None


def read_return_list(data: bytes, public_key: Ed25519PublicKey) -> ReturnList:
    """Parse a return list and check its version, signature, content hash and record count."""
    try:
        first = data.partition(b"\n")[0]
        manifest, signature = envelope.read_head(first, (KIND,))
        # The signature before the body: a list the gateway did not sign is not read further.
        envelope.verify(manifest, signature, public_key, "ゲートウェイ")
        env = envelope.open_envelope(data, (KIND,))
    except envelope.EnvelopeSignatureError:
        raise ReturnListError(f"対象者リスト {manifest.get('list_id')} の署名を検証できません（ゲートウェイの検証鍵を確認してください）。") from None
    except envelope.EnvelopeError as exc:
        raise ReturnListError(str(exc)) from None
    tokens = []
    for n, line in enumerate(env.lines, start=2):
        try:
            tokens.append(str(json.loads(line)["t"]))
        except (ValueError, KeyError, TypeError):
            raise ReturnListError(f"対象者リストの {n} 行目が読めません。") from None
    return ReturnList(env.manifest, tuple(tokens))
