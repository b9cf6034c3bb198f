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
from typing import ClassVar, Self

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
class NoteKeyType:
    """One C2SP signed-note key type: its type byte, and the words a refusal of its verifier key strings uses.

    Every note key has a 4-byte key ID, SHA-256(name || 0x0A || type || key)[:4],
    and a verifier key string ``name+hex(key ID)+base64(type || key)``; only the
    type byte tells a checkpoint signer's key (0x01) from a witness's (0x04).
    """

    byte: int
    #: what a key of this type is, in a refusal ("Ed25519 の鍵")
    label: str
    refusal: type[KeysError]
    what: str = "検証鍵"
    id_name: str = "鍵ハッシュ"
    hint: str = ""

    def key_id(self, name: str, public: bytes) -> bytes:
        """The 4-byte key ID of the key ``public`` named ``name``."""
        return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([self.byte]) + public).digest()[:4]

    def vkey(self, name: str, public_key: Ed25519PublicKey) -> str:
        """The verifier key string ``name+hex(key ID)+base64(type||key)``."""
        raw = public_key.public_bytes_raw()
        return f"{name}+{self.key_id(name, raw).hex()}+{base64.b64encode(bytes([self.byte]) + raw).decode()}"

    def parse(self, vkey: str) -> tuple[str, Ed25519PublicKey]:
        """The name and key of a verifier key string of this type, its key ID checked; else :attr:`refusal` with the reason."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3 or not _NAME.match(parts[0]):
            raise self.refusal(f"{self.what}の形式が違います（名前+{self.id_name}+鍵 の形式ではありません）。")
        try:
            raw = base64.b64decode(parts[2], validate=True)
            claimed = bytes.fromhex(parts[1])
        except (binascii.Error, ValueError) as exc:
            raise self.refusal(f"{self.what}の{self.id_name}または鍵が読めません。") from exc
        if len(raw) != 33 or raw[0] != self.byte:
            raise self.refusal(f"{self.what}が {self.label}ではありません{self.hint}。")
        if self.key_id(parts[0], raw[1:]) != claimed:
            raise self.refusal(f"{self.what}の{self.id_name}が鍵と一致しません。")
        return parts[0], Ed25519PublicKey.from_public_bytes(raw[1:])


#: A checkpoint signer's key (signed-note Ed25519, type 0x01).
ED25519 = NoteKeyType(_ED25519, "Ed25519 の鍵", VerifierKeyError)


@dataclass(frozen=True)
class NoteKey:
    """A signed-note public key of the type ``TYPE``: its name and Ed25519 key, its key ID and its verifier key string."""

    TYPE: ClassVar[NoteKeyType]
    name: str
    public_key: Ed25519PublicKey

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID (signed-note's "key hash")."""
        return self.TYPE.key_id(self.name, self.public_key.public_bytes_raw())

    def vkey(self) -> str:
        """The verifier key string ``name+hex(key ID)+base64(type||key)``."""
        return self.TYPE.vkey(self.name, self.public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> Self:
        """Parse a verifier key string of this type and check its key ID."""
        return cls(*cls.TYPE.parse(vkey))


@dataclass(frozen=True)
class Verifier(NoteKey):
    """An Ed25519 note verifier (the checkpoint signer's key): key name, key hash and public key."""

    TYPE: ClassVar[NoteKeyType] = ED25519

    @property
    def key_hash(self) -> bytes:
        """The 4-byte key hash of C2SP signed-note."""
        return self.key_id


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
