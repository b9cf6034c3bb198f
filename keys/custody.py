"""Escrow custody: the X25519 escrow key at rest under a key split k-of-n (Shamir) among custodians.

Layout of the secret chain::

    Shamir(k, n) over a 16-byte seed  ──HKDF-SHA256──▶  KEK (32 bytes)
    KEK ──AES-256-GCM──▶ escrow private key (X25519, 32 bytes)

Why a 16-byte seed: pycryptodome's Shamir works over GF(2^128), i.e. on
16-byte secrets. Splitting a 16-byte seed once and expanding it with HKDF
(bound to the escrow key id and the share set id) keeps one share per
custodian and one reconstruction to check. The 128-bit seed matches the
~128-bit security of X25519 itself, so it is not the weak link; splitting a
32-byte KEK as two halves would double the shares without raising the
security of the chain above X25519's.

Every share is checked on its own before combining: the share file is
encrypted under its custodian's passphrase (Argon2id + AES-GCM, header as
associated data), names its escrow key id and share set id (a foreign share
is named as such), and must match a SHA-256 commitment kept in the sealed
escrow key. The combined key is then checked by the AES-GCM tag and by
re-deriving the public key, so a wrong share can never yield a wrong key.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from Crypto.Protocol.SecretSharing import Shamir
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from keys import passphrase as _pp
from keys import labels
from keys.documents import b64d, b64e, canonical_json, parse_document, read_document, write_document
from keys._ids import fingerprint
from keys.errors import KeyFileError, ShareError, ShareNotYoursError, WrongPassphraseError

SHARE_KIND = "tsunagu/custodian-share"
SEALED_KIND = "tsunagu/escrow-private-key"
PUBLIC_KIND = "tsunagu/escrow-public-key"
_VERSION = 1
_MAX_CUSTODIANS = 255  # Shamir indices are one byte in the share format


@dataclass(frozen=True)
class EscrowPublicKey:
    """The escrow's X25519 public key, to which agents seal identities."""

    key_id: str
    public_key: X25519PublicKey

    @classmethod
    def from_raw(cls, raw: bytes) -> EscrowPublicKey:
        """Build from the 32 raw public-key bytes."""
        return cls(fingerprint("ek", raw), X25519PublicKey.from_public_bytes(raw))

    def raw(self) -> bytes:
        """The 32 raw public-key bytes."""
        return self.public_key.public_bytes_raw()


@dataclass(frozen=True)
class EscrowPrivateKey:
    """The unsealed escrow key; lives only in the escrow service's memory."""

    key_id: str
    private_key: X25519PrivateKey = field(repr=False)

    @property
    def public(self) -> EscrowPublicKey:
        """The matching public key."""
        return EscrowPublicKey.from_raw(self.private_key.public_key().public_bytes_raw())


@dataclass(frozen=True)
class Custodian:
    """A custodian at a ceremony: a name for the share file and the passphrase protecting it."""

    name: str
    passphrase: str = field(repr=False)


@dataclass(frozen=True)
class ShareInput:
    """A share file offered for unsealing, with its custodian's passphrase."""

    path: Path
    passphrase: str = field(repr=False)


def write_escrow_public(path: Path, public: EscrowPublicKey) -> None:
    """Write the escrow public key file (not secret; mode 0644)."""
    write_document(path, PUBLIC_KIND, _VERSION, {"key_id": public.key_id, "x25519": b64e(public.raw())}, mode=0o644)


def read_escrow_public(path: Path) -> EscrowPublicKey:
    """Read the escrow public key file and check its key id."""
    doc = read_document(path, PUBLIC_KIND, _VERSION, ("key_id", "x25519"))
    public = EscrowPublicKey.from_raw(b64d(doc["x25519"], f"{path} の公開鍵"))
    if public.key_id != doc["key_id"]:
        raise KeyFileError(f"{path} の鍵 ID が公開鍵と一致しません。ファイルが編集されたか壊れています。")
    return public


def create_escrow(
    sealed_path: Path, shares_dir: Path, custodians: Sequence[Custodian], threshold: int, params: _pp.KdfParams
) -> tuple[EscrowPrivateKey, list[Path]]:
    """Generate the escrow key pair, seal it under a fresh KEK and split the KEK among ``custodians``.

    Share files are written first and the sealed key last, so an interrupted
    ceremony leaves no sealed key without its shares.
    """
    escrow = EscrowPrivateKey(
        fingerprint("ek", (priv := X25519PrivateKey.generate()).public_key().public_bytes_raw()), priv
    )
    return escrow, _seal_and_split(escrow, sealed_path, shares_dir, custodians, threshold, params)


def unseal(sealed_path: Path, shares: Sequence[ShareInput]) -> EscrowPrivateKey:
    """Reconstruct the escrow private key from at least k custodian shares.

    Each share is opened and checked on its own first, so the error names the
    share at fault: missing file, wrong passphrase, duplicate index, a share of
    another escrow key or of an earlier split, or a corrupted value.
    """
    sealed = _read_sealed(sealed_path)
    threshold = sealed["threshold"]
    by_index: dict[int, bytes] = {}
    for share in shares:
        index, value = _open_share(share, sealed)
        if index in by_index:
            raise ShareError(f"持分 {index} 番が二度指定されています（{share.path}）。異なる鍵管理者の持分を使ってください。")
        by_index[index] = value
    if len(by_index) < threshold:
        raise ShareError(
            f"持分が足りません: {threshold} 人分が必要ですが、{len(by_index)} 人分しかありません（全 {sealed['custodians']} 人）。"
        )
    seed = Shamir.combine(sorted(by_index.items())[:threshold])
    kek = _kek(seed, sealed["escrow_key_id"], sealed["share_set_id"])
    try:
        raw = AESGCM(kek).decrypt(
            b64d(sealed["nonce"], "nonce"), b64d(sealed["ciphertext"], "暗号文"), _sealed_ad(sealed)
        )
    except InvalidTag as exc:
        raise ShareError(f"持分から復元した鍵で {sealed_path} を開けません。エスクロー鍵ファイルが改ざんされています。") from exc
    private = X25519PrivateKey.from_private_bytes(raw)
    if fingerprint("ek", private.public_key().public_bytes_raw()) != sealed["escrow_key_id"]:
        raise ShareError(f"{sealed_path} の中身が鍵 ID {sealed['escrow_key_id']} と一致しません。")
    return EscrowPrivateKey(sealed["escrow_key_id"], private)


def rewrap(
    sealed_path: Path,
    old_shares: Sequence[ShareInput],
    shares_dir: Path,
    custodians: Sequence[Custodian],
    threshold: int,
    params: _pp.KdfParams,
) -> tuple[str, list[Path]]:
    """Re-split the escrow key for new custodians and a new k-of-n, given k old shares.

    The escrow key pair stays (identities already sealed to it stay openable);
    a new KEK and share set id make every old share foreign from now on.
    Returns the new share set id and the new share files.
    """
    escrow = unseal(sealed_path, old_shares)
    paths = _seal_and_split(escrow, sealed_path, shares_dir, custodians, threshold, params)
    return sealed_info(sealed_path)["share_set_id"], paths


def check_share(share: ShareInput, sealed_path: Path, custodian: str) -> int:
    """Check one share on its own for ``custodian`` (the signed-in user offering it); returns its index.

    A share names its custodian in its header, which is bound to the share as
    associated data of its passphrase encryption, and the sealed key lists
    each index's custodian (bound to the sealed key the same way). The share
    is refused unless both name ``custodian``, before its passphrase is tried:
    a custodian can offer only their own share.
    """
    sealed = _read_sealed(sealed_path)
    name = str(share.path)
    try:
        raw = share.path.read_bytes()
    except FileNotFoundError as exc:
        raise ShareError(f"持分ファイル {name} がありません。") from exc
    doc = parse_document(
        raw, SHARE_KIND, _VERSION, ("escrow_key_id", "share_set_id", "index", "threshold", "custodians", "custodian", "locked"), name
    )
    if (doc["escrow_key_id"], doc["share_set_id"]) != (sealed["escrow_key_id"], sealed["share_set_id"]):
        return _open_share(share, sealed)[0]  # refused there, naming the foreign key or the earlier split
    index = doc["index"]
    names = sealed.get("custodian_names") or []
    listed = names[index - 1] if isinstance(index, int) and 1 <= index <= len(names) else None
    if doc["custodian"] != custodian or (names and listed != custodian):
        owner = listed if names else doc["custodian"]
        raise ShareNotYoursError(
            f"持分 {index} 番は鍵管理者「{owner}」の持分です。ログインしている「{custodian}」さんが提出できるのは自分の持分だけです。"
        )
    return _open_share(share, sealed)[0]


def sealed_info(sealed_path: Path) -> dict[str, Any]:
    """Public facts about the sealed escrow key: key id, share set id, k and n."""
    sealed = _read_sealed(sealed_path)
    return {key: sealed[key] for key in ("escrow_key_id", "share_set_id", "threshold", "custodians")}


def _seal_and_split(
    escrow: EscrowPrivateKey,
    sealed_path: Path,
    shares_dir: Path,
    custodians: Sequence[Custodian],
    threshold: int,
    params: _pp.KdfParams,
) -> list[Path]:
    count = len(custodians)
    if not 2 <= threshold <= count <= _MAX_CUSTODIANS:
        raise ShareError(
            f"鍵管理者の人数 {count} と必要人数 {threshold} が不正です（2 ≤ 必要人数 ≤ 人数 ≤ {_MAX_CUSTODIANS}）。"
        )
    names = [c.name for c in custodians]
    if len(set(names)) != count or any(not n or "\n" in n for n in names):
        raise ShareError("鍵管理者の名前は空でなく、互いに異なる必要があります。")
    share_set_id = f"ss_{secrets.token_hex(8)}"
    seed = os.urandom(16)
    kek = _kek(seed, escrow.key_id, share_set_id)
    split = Shamir.split(threshold, count, seed)
    header = {
        "escrow_key_id": escrow.key_id,
        "public_key": b64e(escrow.public.raw()),
        "share_set_id": share_set_id,
        "threshold": threshold,
        "custodians": count,
        "custodian_names": names,
        "share_commitments": {str(i): _commitment(share_set_id, i, v) for i, v in split},
        "kek_derivation": "shamir-gf128-seed/hkdf-sha256",
        "aead": "aes-256-gcm",
    }
    nonce = os.urandom(12)
    raw_private = escrow.private_key.private_bytes_raw()
    sealed = {**header, "nonce": b64e(nonce), "ciphertext": b64e(AESGCM(kek).encrypt(nonce, raw_private, canonical_json(header)))}

    paths = []
    target_dir = shares_dir / share_set_id
    for (index, value), custodian in zip(split, custodians, strict=True):
        share_header = {
            "escrow_key_id": escrow.key_id,
            "share_set_id": share_set_id,
            "index": index,
            "threshold": threshold,
            "custodians": count,
            "custodian": custodian.name,
        }
        locked = _pp.lock(value, custodian.passphrase, params, canonical_json(share_header))
        path = target_dir / f"custodian-{index}.json"
        write_document(path, SHARE_KIND, _VERSION, {**share_header, "locked": locked})
        paths.append(path)
    write_document(sealed_path, SEALED_KIND, _VERSION, sealed)
    return paths


def _kek(seed: bytes, escrow_key_id: str, share_set_id: str) -> bytes:
    info = labels.ESCROW_KEK + escrow_key_id.encode() + b"\x00" + share_set_id.encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(seed)


def _commitment(share_set_id: str, index: int, value: bytes) -> str:
    return hashlib.sha256(labels.SHARE_COMMITMENT + share_set_id.encode() + bytes([index]) + value).hexdigest()


def _sealed_ad(sealed: dict[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in sealed.items() if k not in ("format", "version", "nonce", "ciphertext")})


def _read_sealed(path: Path) -> dict[str, Any]:
    return read_document(
        path,
        SEALED_KIND,
        _VERSION,
        ("escrow_key_id", "public_key", "share_set_id", "threshold", "custodians", "share_commitments", "nonce", "ciphertext"),
    )


def _open_share(share: ShareInput, sealed: dict[str, Any]) -> tuple[int, bytes]:
    name = str(share.path)
    try:
        raw = share.path.read_bytes()
    except FileNotFoundError as exc:
        raise ShareError(f"持分ファイル {name} がありません。") from exc
    except IsADirectoryError as exc:
        raise ShareError(f"{name} はファイルではなくフォルダです。") from exc
    doc = parse_document(
        raw, SHARE_KIND, _VERSION, ("escrow_key_id", "share_set_id", "index", "threshold", "custodians", "custodian", "locked"), name
    )
    if doc["escrow_key_id"] != sealed["escrow_key_id"]:
        raise ShareError(
            f"{name} は別のエスクロー鍵（{doc['escrow_key_id']}）の持分です。この鍵は {sealed['escrow_key_id']} です。"
        )
    if doc["share_set_id"] != sealed["share_set_id"]:
        raise ShareError(
            f"{name} は以前の（または別の）分割 {doc['share_set_id']} の持分で、現在の分割は {sealed['share_set_id']} です。"
            "鍵の再分割後は新しい持分を使ってください。"
        )
    index = doc["index"]
    header = {k: doc[k] for k in ("escrow_key_id", "share_set_id", "index", "threshold", "custodians", "custodian")}
    try:
        value = _pp.unlock(doc["locked"], share.passphrase, canonical_json(header), name)
    except WrongPassphraseError as exc:
        raise ShareError(f"持分 {index} 番（{doc['custodian']}、{name}）をパスフレーズで開けません。パスフレーズが違います。") from exc
    if not isinstance(index, int) or _commitment(doc["share_set_id"], index, value) != sealed["share_commitments"].get(str(index)):
        raise ShareError(f"持分 {index} 番（{doc['custodian']}、{name}）が壊れています。記録された値と一致しません。")
    return index, value
