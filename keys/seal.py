"""Sealing identities to the escrow key: one X25519 operation per batch, one AEAD per record.

Construction (HPKE-like, built from ``cryptography`` primitives only)::

    ephemeral X25519 key e;  ss = X25519(e, escrow public key)
    batch secret = HKDF-SHA256(ss, salt = e_pub || escrow_pub, info = "tsunagu/seal/v1/batch" || header)
    record key   = HKDF-Expand-SHA256(batch secret, info = "tsunagu/seal/v1/record" || record token)
    ciphertext   = nonce || AES-256-GCM(record key, nonce, identity JSON padded with spaces to a size class,
                        AD = version, escrow key id, source, batch id, record token)

Padding: AES-GCM reveals the plaintext's length, and an identity's length is
the length of the name and address in it. Every identity is padded with
JSON whitespace (which the parser ignores, so unpadded ciphertexts still
open) to the smallest of :data:`SIZE_CLASSES` that holds it; almost every
record of a town falls in the first class (the length attack of
``tsunagu bench attack`` measures what is left).

The escrow derives one record key with :func:`derive_record_key` and can hand
out just that key: HKDF-Expand is one-way, so a record key tells nothing
about the batch secret or any other record. The associated data binds the
record token, the source and the batch, so a ciphertext moved to another
record, source or batch fails to open.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from keys import labels
from keys.documents import b64d, b64e, canonical_json
from keys.custody import EscrowPrivateKey, EscrowPublicKey
from keys.errors import KeyIdMismatchError, SealError

FORMAT = "tsunagu/sealed-batch"
VERSION = 1
_NONCE = 12
_RECORD_INFO = labels.SEAL_RECORD
_SHA256 = hashes.SHA256()

#: Plaintext sizes an identity is padded to (bytes); beyond the last, whole multiples of it.
SIZE_CLASSES: tuple[int, ...] = (512, 1024, 2048)


def padded_size(length: int) -> int:
    """The size class a plaintext of ``length`` bytes is padded to."""
    for size in SIZE_CLASSES:
        if length <= size:
            return size
    last = SIZE_CLASSES[-1]
    return -(-length // last) * last


@dataclass(frozen=True)
class BatchHeader:
    """Everything the escrow needs, besides one record's ciphertext and token, to open that record."""

    escrow_key_id: str
    source: str
    batch_id: str
    ephemeral_public: bytes

    def to_json(self) -> dict[str, Any]:
        """The header as a JSON object."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "escrow_key_id": self.escrow_key_id,
            "source": self.source,
            "batch_id": self.batch_id,
            "ephemeral_x25519": b64e(self.ephemeral_public),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BatchHeader:
        """Read a header back; refuses other formats and versions."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT or data.get("version") != VERSION:
            raise SealError("封緘バッチのヘッダの形式が違います（tsunagu/sealed-batch 版 1 ではありません）。")
        try:
            return cls(data["escrow_key_id"], data["source"], data["batch_id"], b64d(data["ephemeral_x25519"], "ephemeral_x25519"))
        except (KeyError, TypeError) as exc:
            raise SealError("封緘バッチのヘッダに必要な項目がありません。") from exc


@dataclass(frozen=True)
class SealedBatch:
    """A batch header and one ciphertext per record token."""

    header: BatchHeader
    records: dict[str, bytes]

    def to_json(self) -> dict[str, Any]:
        """The batch as a JSON object (ciphertexts base64)."""
        return {"header": self.header.to_json(), "records": {t: b64e(c) for t, c in self.records.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SealedBatch:
        """Read a batch back from :meth:`to_json`."""
        try:
            records = {str(t): b64d(c, f"記録 {t} の暗号文") for t, c in data["records"].items()}
            return cls(BatchHeader.from_json(data["header"]), records)
        except (KeyError, TypeError, AttributeError) as exc:
            raise SealError("封緘バッチの形式が違います（header と records が必要です）。") from exc


@dataclass(frozen=True)
class RecordKey:
    """The key of one sealed record, as the escrow releases it; opens that record only."""

    escrow_key_id: str
    batch_id: str
    record_token: str
    key: bytes = field(repr=False)


class BatchSealer:
    """Seals the identities of one batch record by record, so a batch of any size is sealed in bounded memory.

    Holds the batch secret (derived once, from one X25519 exchange) for as long as the batch is being
    sealed; each :meth:`seal` is one HKDF-Expand and one AES-GCM. Several processes may seal records of
    the same batch with copies of one sealer; tokens are unique by construction, so no record key is
    ever used twice.
    """

    def __init__(self, escrow: EscrowPublicKey, source: str, batch_id: str) -> None:
        """Start a batch for ``source`` sealed to ``escrow``."""
        ephemeral = X25519PrivateKey.generate()
        self.header = BatchHeader(escrow.key_id, source, batch_id, ephemeral.public_key().public_bytes_raw())
        self._batch_secret = _batch_secret(ephemeral.exchange(escrow.public_key), self.header, escrow.raw())
        self._ad_prefix = _ad_prefix(self.header)

    def seal(self, token: str, identity: Mapping[str, Any]) -> bytes:
        """The ciphertext of one identity (name, kana, birth date, address, department record id …) under its record token."""
        token_bytes = token.encode("utf-8")
        key = HKDFExpand(_SHA256, 32, _RECORD_INFO + token_bytes).derive(self._batch_secret)
        nonce = os.urandom(_NONCE)
        plaintext = json.dumps(identity, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        plaintext = plaintext.ljust(padded_size(len(plaintext)), b" ")
        return nonce + AESGCM(key).encrypt(nonce, plaintext, self._ad_prefix + token_bytes)


def seal_batch(
    escrow: EscrowPublicKey, source: str, batch_id: str, identities: Mapping[str, Mapping[str, Any]]
) -> SealedBatch:
    """Seal each identity (name, kana, birth date, address, department record id …) under its record token.

    ``identities`` maps a record token to a JSON-serialisable dict; tokens are
    unique by construction, so no record key is ever used twice.
    """
    sealer = BatchSealer(escrow, source, batch_id)
    return SealedBatch(sealer.header, {token: sealer.seal(token, identity) for token, identity in identities.items()})


def derive_record_key(escrow: EscrowPrivateKey, header: BatchHeader, record_token: str) -> RecordKey:
    """Escrow side: the key of one record, derived inside the escrow; the batch secret never leaves."""
    if header.escrow_key_id != escrow.key_id:
        raise KeyIdMismatchError(
            f"このバッチはエスクロー鍵 {header.escrow_key_id} 宛てで、開封に使う鍵は {escrow.key_id} です。"
        )
    try:
        shared = escrow.private_key.exchange(X25519PublicKey.from_public_bytes(header.ephemeral_public))
    except ValueError as exc:
        raise SealError(f"バッチ {header.batch_id} の一時公開鍵が不正です。") from exc
    batch_secret = _batch_secret(shared, header, escrow.public.raw())
    key = HKDFExpand(_SHA256, 32, _RECORD_INFO + record_token.encode("utf-8")).derive(batch_secret)
    return RecordKey(escrow.key_id, header.batch_id, record_token, key)


def open_record(record_key: RecordKey, header: BatchHeader, ciphertext: bytes) -> dict[str, Any]:
    """Open one sealed record with its released key; fails if the ciphertext belongs elsewhere."""
    if record_key.batch_id != header.batch_id or record_key.escrow_key_id != header.escrow_key_id:
        raise SealError(f"記録鍵はバッチ {record_key.batch_id} のもので、このバッチ {header.batch_id} には使えません。")
    nonce, body = ciphertext[:_NONCE], ciphertext[_NONCE:]
    try:
        plaintext = AESGCM(record_key.key).decrypt(nonce, body, _ad_prefix(header) + record_key.record_token.encode("utf-8"))
    except (InvalidTag, ValueError) as exc:
        raise SealError(
            f"記録 {record_key.record_token}（バッチ {header.batch_id}、{header.source}）を開封できません。"
            "暗号文が別の記録のものか、改ざんされています。"
        ) from exc
    return json.loads(plaintext.decode("utf-8"))


def _batch_secret(shared: bytes, header: BatchHeader, escrow_public: bytes) -> bytes:
    info = labels.SEAL_BATCH + canonical_json(
        {"escrow_key_id": header.escrow_key_id, "source": header.source, "batch_id": header.batch_id}
    )
    return HKDF(algorithm=_SHA256, length=32, salt=header.ephemeral_public + escrow_public, info=info).derive(shared)


def _ad_prefix(header: BatchHeader) -> bytes:
    # Length-prefixed fields, so "a" + "bc" never collides with "ab" + "c"; the token goes last.
    parts = [f"{FORMAT}/{VERSION}", header.escrow_key_id, header.source, header.batch_id]
    out = bytearray()
    for part in parts:
        raw = part.encode("utf-8")
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)
