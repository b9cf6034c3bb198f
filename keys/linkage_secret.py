"""The linkage secret of a municipality's linkage domain: what CLKs are keyed with.

Encodings under different key ids are different codes for the same person and
must never be compared; :func:`ensure_same_key_id` is the guard every
comparison goes through.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol

from keys._ids import fingerprint
from keys.errors import KeyFileError, KeyIdMismatchError

SECRET_BYTES = 32


@dataclass(frozen=True)
class LinkageSecret:
    """A linkage secret and its key id (a fingerprint of the secret, so one can check the other)."""

    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) < SECRET_BYTES:
            raise KeyFileError(f"連携鍵 {self.key_id} が短すぎます（{SECRET_BYTES} バイト以上が必要）。")
        if fingerprint("lk", self.secret) != self.key_id:
            raise KeyFileError(f"連携鍵の鍵 ID {self.key_id} が鍵の中身と一致しません。ファイルが編集されたか壊れています。")

    @classmethod
    def from_secret(cls, secret: bytes) -> LinkageSecret:
        """Wrap raw secret bytes, computing their key id."""
        return cls(fingerprint("lk", secret), secret)


def generate_linkage_secret() -> LinkageSecret:
    """A fresh 32-byte linkage secret from the operating system's CSPRNG."""
    return LinkageSecret.from_secret(os.urandom(SECRET_BYTES))


class _HasKeyId(Protocol):
    key_id: str


def ensure_same_key_id(a: str | _HasKeyId, b: str | _HasKeyId) -> str:
    """Return the common key id of ``a`` and ``b`` (key ids, or objects with ``key_id``).

    Raises :class:`KeyIdMismatchError` when they differ: encodings under two
    linkage secrets look alike but mean nothing to each other.
    """
    id_a = a if isinstance(a, str) else a.key_id
    id_b = b if isinstance(b, str) else b.key_id
    if id_a != id_b:
        raise KeyIdMismatchError(
            f"鍵 ID の異なる符号化は比較できません（{id_a} と {id_b}）。同じ連携鍵で符号化し直してください。"
        )
    return id_a
