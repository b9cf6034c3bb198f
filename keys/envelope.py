"""The envelope: one signed, versioned layout for every message between parties.

Every message — an agent's snapshot (or one part of it), its federation
submission and its state question to the gateway, the gateway's return lists
and re-identification filings (for the escrow), the messages between federated
gateways, a carried bundle of any of these —
is UTF-8 JSON Lines with the same first line::

    line 1      {"manifest": {"format": "tsunagu-envelope", "version": 2, "kind": K, ...}, "signature": "<base64 Ed25519>"}
    line 2..n+1 the records, one JSON object a line (only kinds with a body)

* ``kind`` says what the message is (:data:`KINDS`); each kind names the
  manifest fields it requires and whether records follow.
* A kind with a body also carries ``record_count`` and ``content_sha256``, the
  SHA-256 of every byte after the first newline, so the signature over the
  manifest covers the records.
* ``signature`` is Ed25519 over :data:`SIGNING_CONTEXT` followed by the
  canonical JSON of the manifest (sorted keys, no spaces). The context keeps
  an envelope signature from ever being valid for anything else the same key
  signs (a checkpoint, a key file), and ``kind`` inside the manifest keeps a
  message of one kind from being taken for another.

``keys/envelope.schema.json`` is the JSON Schema of the first line; a test
checks that it and :data:`KINDS` say the same. The layout of the records of
each kind is its module's business (``keys.submission``, ``keys.federation``,
``keys.return_list``, ``keys.filing``); binding (agent ↔ source, chains, nonces, replays) is
checked by the receiver.

Format version 1 was one hand-made format per message (``tsunagu-submission``,
``tsunagu-federation-submission``, ``tsunagu-return-list``, ``{"message": …}``,
``{"request": …}``). A message in version 1 or in a version this code does not
know is refused with :class:`EnvelopeVersionError`, whose message says which
side to upgrade and that the message must be sent again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from keys.documents import canonical_json
from keys.errors import KeysError
from keys.filing_model import RequestFiling

FORMAT = "tsunagu-envelope"
VERSION = 2

#: Prefixed to the canonical manifest before signing (domain separation from every other signature of the same key).
SIGNING_CONTEXT = b"tsunagu-envelope/2\n"

#: The fields every kind with a body carries, set by :func:`seal`.
BODY_FIELDS = ("record_count", "content_sha256")


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of message: who signs it, the manifest fields it requires, and whether records follow line 1."""

    name: str
    signer: str
    fields: tuple[str, ...]
    body: bool
    label: str
    #: what the receiver tells people to do with a message of an old version
    upgrade: str


_AGENT_UPGRADE = "送信したエージェントを最新版に更新してから、もう一度実行（tsunagu agent run）して送り直してください。"
_GATEWAY_UPGRADE = "送信元のゲートウェイを最新版に更新してから、もう一度送ってもらってください。"
_LIST_UPGRADE = "ゲートウェイとエージェントを同じ版に更新し、対象者リストをゲートウェイから出力し直してください。"
_FILING_UPGRADE = "ゲートウェイとエスクローを同じ版に更新し、ゲートウェイの「再識別の申請」からもう一度申請してください。"

#: The fields of a re-identification filing, all in the manifest: derived from its model (listed there only).
FILING_FIELDS = tuple(RequestFiling.model_fields)

_FEDERATION_FIELDS = ("from", "to", "purpose", "federation_key_id", "nonce", "issued_at", "expires_at", "body")

KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("submission", "agent",
         ("agent_id", "signing_key_id", "municipality", "network", "source", "schema_version", "linkage_key_id",
          "escrow_key_id", "sequence", "batch_id", "created_at", "mode", "seal_header"),
         True, "提出データ", _AGENT_UPGRADE),
    Kind("federation-submission", "agent",
         ("agent_id", "signing_key_id", "municipality", "source", "schema_version", "federation_key_id", "sequence",
          "created_at"),
         True, "連携圏の提出データ", _AGENT_UPGRADE),
    Kind("agent-state-request", "agent", ("agent_id", "at"), False, "状態の問い合わせ", _AGENT_UPGRADE),
    Kind("return-list", "gateway",
         ("list_id", "municipality", "source", "action", "purpose", "created_at"),
         True, "対象者リスト", _LIST_UPGRADE),
    Kind("reidentification-filing", "gateway", FILING_FIELDS, False, "再識別の申請", _FILING_UPGRADE),
    *(Kind(f"federation.{name}", "peer", _FEDERATION_FIELDS, False, "連携圏のメッセージ", _GATEWAY_UPGRADE)
      for name in ("query", "answer", "handover_request", "handover_answer", "pooled_counts")),
)}

#: Version 1's format names, recognised only to say how to get out of them.
_LEGACY_FORMATS = {"tsunagu-submission": "submission", "tsunagu-federation-submission": "federation-submission",
                   "tsunagu-return-list": "return-list"}
_LEGACY_TOPS = {"message": "federation.query", "request": "agent-state-request"}


class EnvelopeError(KeysError):
    """The bytes are not an envelope this code can read; the message says why."""


class EnvelopeVersionError(EnvelopeError):
    """The envelope is in a format version this code does not read (an old sender, or a newer one)."""


class EnvelopeContentError(EnvelopeError):
    """The records do not match the manifest's content hash or record count."""


class EnvelopeSignatureError(EnvelopeError):
    """The signature does not verify under the sender's key."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed envelope (signature not yet checked): its manifest, signature and, for kinds with a body, the record lines."""

    manifest: dict[str, Any]
    signature: bytes
    lines: tuple[bytes, ...] = ()

    @property
    def kind(self) -> str:
        """The kind named in the manifest."""
        return str(self.manifest["kind"])

    def verify(self, public_key: Ed25519PublicKey, who: str = "") -> None:
        """Check the signature; raises :class:`EnvelopeSignatureError` naming ``who`` (the expected signer)."""
        verify(self.manifest, self.signature, public_key, who)


def signed_bytes(manifest: dict[str, Any]) -> bytes:
    """The exact bytes the signature covers."""
    return SIGNING_CONTEXT + canonical_json(manifest)


def sign(manifest: dict[str, Any], signing_key: Ed25519PrivateKey) -> bytes:
    """The Ed25519 signature of ``manifest`` (a complete manifest, as returned by :func:`complete`)."""
    return signing_key.sign(signed_bytes(manifest))


def verify(manifest: dict[str, Any], signature: bytes, public_key: Ed25519PublicKey, who: str = "") -> None:
    """The one verifier: raises :class:`EnvelopeSignatureError` unless ``signature`` is ``public_key``'s over ``manifest``."""
    try:
        public_key.verify(signature, signed_bytes(manifest))
    except InvalidSignature:
        kind = KINDS.get(str(manifest.get("kind")))
        raise EnvelopeSignatureError(
            f"{kind.label if kind else 'メッセージ'}の署名を{who + 'の' if who else ''}登録済みの鍵で検証できません"
            "（別の鍵で署名されたか、途中で書き換えられています）。") from None


def complete(kind: str, manifest: dict[str, Any], record_count: int | None = None,
             content_sha256: str | None = None) -> dict[str, Any]:
    """``manifest`` with format, version and kind (and, for a kind with a body, its count and hash), checked for completeness."""
    spec = _kind(kind)
    full = {**manifest, "format": FORMAT, "version": VERSION, "kind": kind}
    if spec.body:
        if record_count is None or content_sha256 is None:
            raise EnvelopeError(f"{spec.label}には記録の数とハッシュが必要です。")
        full.update(record_count=record_count, content_sha256=content_sha256)
    else:
        for name in BODY_FIELDS:
            full.pop(name, None)
    _check_fields(spec, full)
    return full


def head(kind: str, manifest: dict[str, Any], signing_key: Ed25519PrivateKey, record_count: int | None = None,
         content_sha256: str | None = None) -> bytes:
    """The signed first line (without newline), for a writer that streams the body after it."""
    full = complete(kind, manifest, record_count, content_sha256)
    return json.dumps({"manifest": full, "signature": base64.b64encode(sign(full, signing_key)).decode("ascii")},
                      ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def seal(kind: str, manifest: dict[str, Any], lines: Iterable[bytes], signing_key: Ed25519PrivateKey) -> bytes:
    """The whole signed envelope: the first line, then one record line each (each without its newline)."""
    if not _kind(kind).body:
        return head(kind, manifest, signing_key)
    lines = list(lines)
    body = b"".join(line + b"\n" for line in lines)
    return head(kind, manifest, signing_key, len(lines), hashlib.sha256(body).hexdigest()) + b"\n" + body


def read_head(line: bytes, kinds: Iterable[str] | None = None) -> tuple[dict[str, Any], bytes]:
    """Parse and check the first line alone: (manifest, signature), signature not yet verified.

    ``kinds`` limits the kinds accepted here; the version is checked before anything else of the manifest.
    """
    kinds = tuple(kinds) if kinds is not None else None
    try:
        top = json.loads(line)
    except (ValueError, RecursionError):
        raise EnvelopeError("1 行目（マニフェスト）が JSON として読めません。1 行目は {\"manifest\": …, \"signature\": …} です。") from None
    if isinstance(top, dict) and "manifest" not in top:
        legacy = next((KINDS[k] for t, k in _LEGACY_TOPS.items() if t in top), None)
        if legacy is not None:
            raise EnvelopeVersionError(f"この{legacy.label}は古い形式（版 1）で、このソフトウェアは版 {VERSION} だけを読みます。{legacy.upgrade}")
    if not isinstance(top, dict) or not isinstance(top.get("manifest"), dict):
        raise EnvelopeError("1 行目（マニフェスト）が読めません。1 行目は {\"manifest\": …, \"signature\": …} です。")
    manifest = top["manifest"]
    _check_version(manifest)
    name = manifest.get("kind")
    if name not in KINDS:
        raise EnvelopeError(f"メッセージの種類「{str(name)[:40]}」は tsunagu にはありません。")
    spec = KINDS[name]
    if kinds is not None and name not in kinds:
        raise EnvelopeError(f"ここでは{spec.label}（{name}）は受け付けません（受け付けるもの: {', '.join(kinds)}）。")
    try:
        signature = base64.b64decode(top["signature"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise EnvelopeError(f"{spec.label}の署名（signature）が base64 の文字列ではありません。") from None
    _check_fields(spec, manifest)
    return manifest, signature


def open_envelope(data: bytes, kinds: Iterable[str] | None = None, max_records: int | None = None) -> Envelope:
    """Parse an envelope and check its version, kind, fields, content hash and record count (not its signature)."""
    first, sep, body = data.partition(b"\n")
    manifest, signature = read_head(first, kinds)
    spec = KINDS[manifest["kind"]]
    if not spec.body:
        if body.strip():
            raise EnvelopeError(f"{spec.label}は 1 行だけのはずですが、2 行目以降があります。")
        return Envelope(manifest, signature)
    if not sep:
        raise EnvelopeError(f"{spec.label}が途中で切れています（マニフェスト行の後に改行がありません）。")
    count = manifest["record_count"]
    if type(count) is not int or count < 0:
        raise EnvelopeError("マニフェストの record_count が 0 以上の整数ではありません。")
    if max_records is not None and count > max_records:
        raise EnvelopeError(f"{spec.label}の件数 {count} が上限 {max_records} を超えています。")
    if hashlib.sha256(body).hexdigest() != manifest["content_sha256"]:
        raise EnvelopeContentError(f"{spec.label}の中身がマニフェストのハッシュと一致しません（途中で切れたか改変されています）。")
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) != count:
        raise EnvelopeContentError(f"記録の数 {len(lines)} がマニフェストの record_count {count} と違います。")
    return Envelope(manifest, signature, tuple(lines))


def _kind(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise EnvelopeError(f"メッセージの種類「{name}」は tsunagu にはありません。") from None


def _check_version(manifest: dict[str, Any]) -> None:
    fmt, version = manifest.get("format"), manifest.get("version")
    if fmt in _LEGACY_FORMATS:
        legacy = KINDS[_LEGACY_FORMATS[fmt]]
        raise EnvelopeVersionError(f"この{legacy.label}は古い形式（{fmt} 版 {version}）で、このソフトウェアは"
                                   f"「{FORMAT}」版 {VERSION} だけを読みます。{legacy.upgrade}")
    if fmt != FORMAT:
        raise EnvelopeError("tsunagu のメッセージではありません（マニフェストの format が違います）。")
    if version != VERSION:
        kind = KINDS.get(str(manifest.get("kind")))
        how = kind.upgrade if kind else "送信側と受信側のソフトウェアを同じ版に更新してから、送り直してください。"
        raise EnvelopeVersionError(f"メッセージの版 {str(version)[:20]} には対応していません（対応: 版 {VERSION}）。"
                                   f"{'新しい版のソフトウェアから届いた場合は、受信側を更新してください。' if isinstance(version, int) and version > VERSION else ''}{how}")


def _check_fields(spec: Kind, manifest: dict[str, Any]) -> None:
    required = spec.fields + (BODY_FIELDS if spec.body else ())
    missing = [f for f in required if f not in manifest]
    if missing:
        raise EnvelopeError(f"{spec.label}のマニフェストに項目がありません: {', '.join(missing)}")
