"""Private material at rest under a passphrase: Argon2id (RFC 9106) + AES-256-GCM.

``cryptography`` 50 ships Argon2id (``cryptography.hazmat.primitives.kdf.argon2``),
so no second library is needed. The parameters travel with every blob, so a
file written with test parameters still opens, and production files keep the
strong defaults below.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from keys.documents import b64d, b64e, canonical_json, read_document, write_document
from keys.errors import KeyFileError, WrongPassphraseError

# Floors below which a file is refused: a tampered file must not be able to
# weaken the KDF of a blob to nothing. 1 MiB and one pass stay memory-hard.
_MIN_MEMORY_KIB = 1024
_MIN_ITERATIONS = 1
_VERSION = 1


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost parameters.

    Production defaults are RFC 9106 §4's second recommended option
    (t=3 passes, p=4 lanes, m=64 MiB): about 0.1 s on a current server core.
    Tests pass ``KdfParams(memory_kib=1024, iterations=1, lanes=1)``, which is
    still real Argon2id.
    """

    memory_kib: int = 64 * 1024
    iterations: int = 3
    lanes: int = 4

    def __post_init__(self) -> None:
        if self.memory_kib < max(_MIN_MEMORY_KIB, 8 * self.lanes) or self.iterations < _MIN_ITERATIONS or self.lanes < 1:
            raise KeyFileError(
                f"パスフレーズ保護の強度が低すぎます（メモリ {self.memory_kib} KiB、反復 {self.iterations}、"
                f"レーン {self.lanes}）。メモリは {_MIN_MEMORY_KIB} KiB 以上にしてください。"
            )

    def to_json(self) -> dict[str, Any]:
        """The parameters as stored in a file."""
        return {"kdf": "argon2id", "memory_kib": self.memory_kib, "iterations": self.iterations, "lanes": self.lanes}

    @classmethod
    def from_json(cls, data: Any, name: str) -> KdfParams:
        """Read parameters back from a file, refusing unknown KDFs and weakened costs."""
        if not isinstance(data, dict) or data.get("kdf") != "argon2id":
            raise KeyFileError(f"{name} の鍵導出方式が不明です。ファイルが編集されたか壊れています。")
        try:
            return cls(int(data["memory_kib"]), int(data["iterations"]), int(data["lanes"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyFileError(f"{name} の鍵導出パラメータが読めません。") from exc


def _derive(passphrase: str, salt: bytes, params: KdfParams) -> bytes:
    return Argon2id(
        salt=salt, length=32, iterations=params.iterations, lanes=params.lanes, memory_cost=params.memory_kib
    ).derive(passphrase.encode("utf-8"))


def lock(plaintext: bytes, passphrase: str, params: KdfParams, associated_data: bytes) -> dict[str, Any]:
    """Encrypt ``plaintext`` under ``passphrase``; ``associated_data`` binds the file's other fields."""
    if not passphrase:
        raise WrongPassphraseError("パスフレーズが空です。")
    salt, nonce = os.urandom(16), os.urandom(12)
    key = _derive(passphrase, salt, params)
    return {
        "kdf": params.to_json(),
        "salt": b64e(salt),
        "aead": "aes-256-gcm",
        "nonce": b64e(nonce),
        "ciphertext": b64e(AESGCM(key).encrypt(nonce, plaintext, associated_data)),
    }


def unlock(blob: Any, passphrase: str, associated_data: bytes, name: str) -> bytes:
    """Decrypt a blob made by :func:`lock`; a wrong passphrase (or forged file) raises
    :class:`WrongPassphraseError` naming ``name``."""
    if not isinstance(blob, dict) or blob.get("aead") != "aes-256-gcm":
        raise KeyFileError(f"{name} の暗号化形式が不明です。ファイルが編集されたか壊れています。")
    params = KdfParams.from_json(blob.get("kdf"), name)
    salt = b64d(blob.get("salt", ""), f"{name} の salt")
    nonce = b64d(blob.get("nonce", ""), f"{name} の nonce")
    ciphertext = b64d(blob.get("ciphertext", ""), f"{name} の暗号文")
    try:
        return AESGCM(_derive(passphrase, salt, params)).decrypt(nonce, ciphertext, associated_data)
    except (InvalidTag, ValueError) as exc:
        raise WrongPassphraseError(f"{name} をパスフレーズで開けません。パスフレーズが違います。") from exc


def write_locked(path: Path, kind: str, header: dict[str, Any], secret: bytes, passphrase: str, params: KdfParams) -> None:
    """Write a key file whose ``secret`` is locked under ``passphrase``, bound to ``header`` (mode 0600)."""
    write_document(path, kind, _VERSION, {**header, "locked": lock(secret, passphrase, params, canonical_json({"format": kind, **header}))})


def read_locked(path: Path, kind: str, passphrase: str, required: tuple[str, ...] = ()) -> tuple[dict[str, Any], bytes]:
    """Read a key file written by :func:`write_locked`: its header fields and the unlocked secret."""
    doc = read_document(path, kind, _VERSION, ("locked", *required))
    locked = doc.pop("locked")
    header = {k: v for k, v in doc.items() if k not in ("format", "version")}
    return header, unlock(locked, passphrase, canonical_json({"format": kind, **header}), str(path))
