"""The return list: record tokens a caseworker decided to act on, signed by the gateway for the department that owns them.

It has the submission's layout (``keys.submission``), in the other direction:

    line 1      {"manifest": {...}, "signature": "<base64 Ed25519>"}
    line 2..n+1 one record each: {"t": record token}

``manifest`` names the format and version, the list id, the municipality, the
source whose records these are, the action asked for (``line_notice``,
``home_visit`` …), the purpose of use, the creation time, the record count and
``content_sha256`` over every byte after the first newline; the signature is
Ed25519 over the canonical JSON of the manifest (so it covers the tokens
through the hash). No identity is in it: only the department's own record
tokens, which only that department's agent can turn back into its records.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from keys.documents import canonical_json
from keys.errors import KeysError

FORMAT = "tsunagu-return-list"
VERSION = 1
_FIELDS = ("format", "version", "list_id", "municipality", "source", "action", "purpose", "created_at", "record_count",
           "content_sha256")


class ReturnListError(KeysError):
    """A return list cannot be read or trusted; the message says why."""


@dataclass(frozen=True, slots=True)
class ReturnList:
    """A parsed and verified return list."""

    manifest: dict[str, Any]
    tokens: tuple[str, ...]


def write_return_list(manifest: dict[str, Any], tokens: Sequence[str], signing_key: Ed25519PrivateKey) -> bytes:
    """Serialise and sign; ``manifest`` needs every field but format, version, record_count and content_sha256."""
    body = b"".join(json.dumps({"t": t}, separators=(",", ":")).encode("ascii") + b"\n" for t in tokens)
    full = {**manifest, "format": FORMAT, "version": VERSION, "record_count": len(tokens),
            "content_sha256": hashlib.sha256(body).hexdigest()}
    missing = [f for f in _FIELDS if f not in full]
    if missing:
        raise ReturnListError(f"対象者リストのマニフェストに項目がありません: {', '.join(missing)}")
    signature = base64.b64encode(signing_key.sign(canonical_json(full))).decode("ascii")
    head = json.dumps({"manifest": full, "signature": signature}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return head + b"\n" + body


def read_return_list(data: bytes, public_key: Ed25519PublicKey) -> ReturnList:
    """Parse a return list and check its signature, content hash and record count."""
    head, sep, body = data.partition(b"\n")
    try:
        top = json.loads(head)
        manifest, signature = top["manifest"], base64.b64decode(top["signature"], validate=True)
    except (ValueError, KeyError, TypeError):
        raise ReturnListError("対象者リストの 1 行目（マニフェスト）が読めません。") from None
    if not sep or not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ReturnListError("tsunagu の対象者リストではありません。")
    if manifest.get("version") != VERSION:
        raise ReturnListError(f"対象者リストの版 {manifest.get('version')} には対応していません（対応: {VERSION}）。")
    missing = [f for f in _FIELDS if f not in manifest]
    if missing:
        raise ReturnListError(f"対象者リストのマニフェストに項目がありません: {', '.join(missing)}")
    try:
        public_key.verify(signature, canonical_json(manifest))
    except InvalidSignature:
        raise ReturnListError(f"対象者リスト {manifest.get('list_id')} の署名を検証できません（ゲートウェイの検証鍵を確認してください）。") from None
    if hashlib.sha256(body).hexdigest() != manifest["content_sha256"]:
        raise ReturnListError("対象者リストの中身がマニフェストのハッシュと一致しません（途中で切れたか改変されています）。")
    lines = body.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    tokens = []
    for n, line in enumerate(lines, start=2):
        try:
            tokens.append(str(json.loads(line)["t"]))
        except (ValueError, KeyError, TypeError):
            raise ReturnListError(f"対象者リストの {n} 行目が読めません。") from None
    if len(tokens) != manifest["record_count"]:
        raise ReturnListError(f"記録の数 {len(tokens)} がマニフェストの record_count {manifest['record_count']} と違います。")
    return ReturnList(manifest, tuple(tokens))
