"""Signed tree heads as C2SP checkpoints (tlog-checkpoint) in C2SP signed-note format, with Ed25519.

A note is a UTF-8 text ending in a newline, a blank line, then signature
lines ``— <key name> <base64(key hash || signature)>``. The key hash is the
first 4 bytes of SHA-256(key name || 0x0A || 0x01 || Ed25519 public key);
the signature covers the text up to and including its last newline. A
checkpoint's text is three lines: origin, decimal tree size, base64 root hash.
Verifier keys are written ``<name>+<hex key hash>+<base64(0x01 || public key)>``
as in C2SP signed-note. Each way verification can fail has its own exception.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from keys.errors import KeysError

_ED25519 = 0x01
_DASH = "\u2014 "
_NAME = re.compile(r"^[^\s+]+$")
_SIZE = re.compile(r"^(0|[1-9][0-9]{0,19})$")


class CheckpointError(KeysError):
    """A checkpoint or verifier key does not verify."""


class CheckpointFormatError(CheckpointError):
    """The text is not a well-formed signed note or checkpoint."""


class VerifierKeyError(CheckpointError):
    """A verifier key string is malformed."""


class UnknownSignerError(CheckpointError):
    """The note carries no signature by the expected key."""


class SignatureInvalidError(CheckpointError):
    """A signature line by the expected key does not verify."""


class OriginMismatchError(CheckpointError):
    """The checkpoint is for another log (origin line differs)."""


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the log's origin, its size and its RFC 9162 root hash."""

    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        """The checkpoint text that gets signed."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 note verifier: key name, key hash and public key."""

    name: str
    public_key: Ed25519PublicKey

    @property
    def key_hash(self) -> bytes:
        """The 4-byte key hash of C2SP signed-note."""
        return _key_hash(self.name, self.public_key.public_bytes_raw())

    def vkey(self) -> str:
        """The verifier key string ``name+hash+base64(0x01||key)``."""
        raw = bytes([_ED25519]) + self.public_key.public_bytes_raw()
        return f"{self.name}+{self.key_hash.hex()}+{base64.b64encode(raw).decode()}"

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parse a verifier key string and check its key hash."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3 or not _NAME.match(parts[0]):
            raise VerifierKeyError("検証鍵の形式が違います（名前+鍵ハッシュ+鍵 の形式ではありません）。")
        try:
            raw = base64.b64decode(parts[2], validate=True)
            claimed = bytes.fromhex(parts[1])
        except (binascii.Error, ValueError) as exc:
            raise VerifierKeyError("検証鍵の鍵ハッシュまたは鍵が読めません。") from exc
        if len(raw) != 33 or raw[0] != _ED25519:
            raise VerifierKeyError("検証鍵が Ed25519 の鍵ではありません。")
        verifier = cls(parts[0], Ed25519PublicKey.from_public_bytes(raw[1:]))
        if verifier.key_hash != claimed:
            raise VerifierKeyError("検証鍵の鍵ハッシュが鍵と一致しません。")
        return verifier


@dataclass(frozen=True)
class Signer:
    """An Ed25519 note signer (the gateway's checkpoint key)."""

    name: str
    private_key: Ed25519PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise CheckpointFormatError(f"署名鍵の名前 {self.name!r} に空白や + は使えません。")

    @property
    def verifier(self) -> Verifier:
        """The matching verifier."""
        return Verifier(self.name, self.private_key.public_key())


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> str:
    """The signed note of ``checkpoint``."""
    if not checkpoint.origin or "\n" in checkpoint.origin or checkpoint.size < 0:
        raise CheckpointFormatError("チェックポイントの origin または大きさが不正です。")
    body = checkpoint.body()
    signature = signer.private_key.sign(body.encode("utf-8"))
    blob = base64.b64encode(signer.verifier.key_hash + signature).decode()
    return f"{body}\n{_DASH}{signer.name} {blob}\n"


def verify_checkpoint(note: str, verifier: Verifier, origin: str | None = None) -> Checkpoint:
    """Verify ``note`` against ``verifier`` (and ``origin`` if given) and return its checkpoint."""
    body, signatures = _split_note(note)
    matched = False
    for name, blob in signatures:
        if name != verifier.name or blob[:4] != verifier.key_hash:
            continue  # other witnesses may co-sign; only our key counts
        matched = True
        try:
            verifier.public_key.verify(blob[4:], body.encode("utf-8"))
        except InvalidSignature as exc:
            raise SignatureInvalidError(f"チェックポイントの署名（{name}）が正しくありません。") from exc
    if not matched:
        raise UnknownSignerError(f"チェックポイントに鍵 {verifier.name} の署名がありません。")
    checkpoint = _parse_body(body)
    if origin is not None and checkpoint.origin != origin:
        raise OriginMismatchError(f"チェックポイントは別のログ {checkpoint.origin!r} のものです（期待: {origin!r}）。")
    return checkpoint


def _key_hash(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([_ED25519]) + public).digest()[:4]


def _split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    if not note.endswith("\n") or "\n\n" not in note:
        raise CheckpointFormatError("署名付きノートの形式が違います（本文と署名の間の空行がありません）。")
    cut = note.rindex("\n\n")
    body, sig_text = note[: cut + 1], note[cut + 2 :]
    signatures = []
    for line in sig_text.rstrip("\n").split("\n"):
        match = re.fullmatch(r"\u2014 ([^\s+]+) ([A-Za-z0-9+/=]+)", line)
        if not match:
            raise CheckpointFormatError("署名行の形式が違います（「— 名前 署名」ではありません）。")
        try:
            blob = base64.b64decode(match.group(2), validate=True)
        except binascii.Error as exc:
            raise CheckpointFormatError("署名行の署名が base64 として読めません。") from exc
        if len(blob) < 5:
            raise CheckpointFormatError("署名行の署名が短すぎます。")
        signatures.append((match.group(1), blob))
    if not signatures:
        raise CheckpointFormatError("署名付きノートに署名行がありません。")
    return body, signatures


def _parse_body(body: str) -> Checkpoint:
    lines = body.split("\n")[:-1]
    if len(lines) < 3 or not lines[0] or not _SIZE.match(lines[1]):
        raise CheckpointFormatError("チェックポイントの本文が origin・大きさ・根ハッシュの 3 行になっていません。")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error as exc:
        raise CheckpointFormatError("チェックポイントの根ハッシュが base64 として読めません。") from exc
    if len(root) != 32:
        raise CheckpointFormatError("チェックポイントの根ハッシュが 32 バイトではありません。")
    return Checkpoint(lines[0], int(lines[1]), root)
