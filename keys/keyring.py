"""The key hierarchy of one municipality, as kept in the key administrator's home.

``<home>/keys/`` holds::

    keyring.json              index: municipality, audit origin, key ids, linkage key status (public)
    linkage-<key id>.json     linkage secret, locked under the operator passphrase
    escrow-public.json        X25519 escrow public key (given to agents)
    escrow-private.json       X25519 escrow private key, sealed under the k-of-n KEK
    checkpoint-signing.json   Ed25519 key signing audit checkpoints, locked (operator)
    federation-identity.json  Ed25519 municipality identity (federation, enrolment files), locked (operator)

``<home>/shares/<share set id>/custodian-<i>.json`` are the custodians'
shares, to be carried away by each custodian; ``<home>/audit.db`` is the
audit log of key operations (kept by the shells through
``service.audit_store.keyring_log``: this library opens no database).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keys import custody
from keys import passphrase as _pp
from keys.documents import b64e, read_document, write_document
from keys._ids import fingerprint
from transparency.tlog_checkpoint import Signer
from keys.errors import KeyFileError, UnknownKeyIdError
from keys.linkage_secret import LinkageSecret, generate_linkage_secret

_KEYRING = "tsunagu/keyring"
_LINKAGE = "tsunagu/linkage-secret"
_SIGNING = "tsunagu/signing-key"
_VERSION = 1


@dataclass(frozen=True)
class InitResult:
    """What a ceremony produced: key ids and where each custodian's share was written."""

    linkage_key_id: str
    escrow_key_id: str
    share_set_id: str
    checkpoint_key: str
    federation_key: str
    share_files: list[Path]


def init_municipality(
    home: Path,
    municipality: str,
    custodians: Sequence[custody.Custodian],
    threshold: int,
    operator_passphrase: str,
    params: _pp.KdfParams = _pp.KdfParams(),
) -> InitResult:
    """Create the whole key hierarchy of ``municipality`` in ``home`` (refuses an existing one).

    The keyring index is written last: a ceremony interrupted before it leaves
    no keyring, and may simply be run again.
    """
    keys_dir = home / "keys"
    if (keys_dir / "keyring.json").exists():
        raise KeyFileError(f"{keys_dir} にはすでに鍵があります。作り直す場合は別のフォルダを指定してください。")
    if not municipality or not all(c.isalnum() or c in "-_" for c in municipality):
        raise KeyFileError("自治体コードには英数字・ハイフン・下線だけを使ってください（例: 131016）。")
    linkage = generate_linkage_secret()
    _write_linkage(keys_dir, linkage, operator_passphrase, params)
    escrow, share_files = custody.create_escrow(keys_dir / "escrow-private.json", home / "shares", custodians, threshold, params)
    custody.write_escrow_public(keys_dir / "escrow-public.json", escrow.public)
    origin = f"tsunagu/{municipality}/audit-log"
    checkpoint_key = _write_signing(keys_dir / "checkpoint-signing.json", "audit-checkpoint", origin, operator_passphrase, params)
    federation_key = _write_signing(
        keys_dir / "federation-identity.json", "federation-identity", f"tsunagu/{municipality}/identity", operator_passphrase, params
    )
    now = _now()
    write_document(keys_dir / "keyring.json", _KEYRING, _VERSION, {
        "municipality": municipality,
        "audit_origin": origin,
        "linkage": {"current": linkage.key_id, "keys": {linkage.key_id: {"status": "active", "created": now}}},
        "escrow_key_id": escrow.key_id,
        "checkpoint_key": checkpoint_key,
        "federation_key": federation_key,
    })
    return InitResult(linkage.key_id, escrow.key_id, custody.sealed_info(keys_dir / "escrow-private.json")["share_set_id"],
                      checkpoint_key, federation_key, share_files)


class Keyring:
    """A municipality's keys in an administrator's home; secrets are unlocked per call, never cached."""

    def __init__(self, home: Path) -> None:
        """Open the keyring in ``home`` (it must have been made by :func:`init_municipality`)."""
        self.home = home
        self._dir = home / "keys"
        if not (self._dir / "keyring.json").exists():
            raise KeyFileError(f"{home} に鍵がありません。先に `tsunagu keys init --home {home}` を実行してください。")
        self._index = read_document(self._dir / "keyring.json", _KEYRING, _VERSION,
                                    ("municipality", "audit_origin", "linkage", "escrow_key_id", "checkpoint_key", "federation_key"))

    @property
    def municipality(self) -> str:
        """The municipality code."""
        return self._index["municipality"]

    @property
    def current_linkage_key_id(self) -> str:
        """The key id agents encode with now."""
        return self._index["linkage"]["current"]

    @property
    def linkage_keys(self) -> dict[str, dict[str, str]]:
        """Every linkage key id with its status (``active`` or ``retired``)."""
        return dict(self._index["linkage"]["keys"])

    @property
    def escrow_sealed_path(self) -> Path:
        """The sealed escrow private key file."""
        return self._dir / "escrow-private.json"

    @property
    def shares_dir(self) -> Path:
        """Where share files are written, one folder per share set."""
        return self.home / "shares"

    @property
    def checkpoint_vkey(self) -> str:
        """The verifier key of audit checkpoints (what auditors pin)."""
        return self._index["checkpoint_key"]

    def linkage_secret(self, operator_passphrase: str, key_id: str | None = None) -> LinkageSecret:
        """Unlock the linkage secret ``key_id`` (default: current); unknown ids are refused."""
        key_id = key_id or self.current_linkage_key_id
        if key_id not in self._index["linkage"]["keys"]:
            raise UnknownKeyIdError(f"連携鍵 {key_id} はこの鍵束にありません（既知: {', '.join(self.linkage_keys)}）。")
        header, secret = _pp.read_locked(self._dir / f"linkage-{key_id}.json", _LINKAGE, operator_passphrase, ("key_id",))
        if header["key_id"] != key_id:
            raise KeyFileError(f"linkage-{key_id}.json の鍵 ID が {header['key_id']} です。ファイルが差し替えられています。")
        return LinkageSecret(key_id, secret)

    def escrow_public(self) -> custody.EscrowPublicKey:
        """The escrow public key agents seal to."""
        public = custody.read_escrow_public(self._dir / "escrow-public.json")
        if public.key_id != self._index["escrow_key_id"]:
            raise KeyFileError("escrow-public.json の鍵 ID が鍵束と一致しません。ファイルが差し替えられています。")
        return public

    def checkpoint_signer(self, operator_passphrase: str) -> Signer:
        """Unlock the audit checkpoint signer."""
        return self._signer("checkpoint-signing.json", operator_passphrase)

    def federation_signer(self, operator_passphrase: str) -> Signer:
        """Unlock the municipality's federation identity (also signs enrolment files)."""
        return self._signer("federation-identity.json", operator_passphrase)

    @property
    def federation_vkey(self) -> str:
        """The verifier key of the municipality identity."""
        return self._index["federation_key"]

    @property
    def audit_origin(self) -> str:
        """The origin line of the key operations' audit log (its checkpoints name it)."""
        return self._index["audit_origin"]

    @property
    def audit_path(self) -> Path:
        """Where the shell keeps the audit log of key operations (``service.audit_store.keyring_log`` opens it)."""
        return self.home / "audit.db"

    def rotate_linkage(self, operator_passphrase: str, params: _pp.KdfParams = _pp.KdfParams()) -> LinkageSecret:
        """Make a new current linkage secret; the old one is kept, retired, for reading ids only."""
        self.linkage_secret(operator_passphrase)  # the passphrase must open the current key
        new = generate_linkage_secret()
        _write_linkage(self._dir, new, operator_passphrase, params)
        keys = {k: {**v, "status": "retired"} for k, v in self._index["linkage"]["keys"].items()}
        keys[new.key_id] = {"status": "active", "created": _now()}
        self._write_index({**self._index, "linkage": {"current": new.key_id, "keys": keys}})
        return new

    def _write_index(self, index: dict[str, Any]) -> None:
        body = {k: v for k, v in index.items() if k not in ("format", "version")}
        write_document(self._dir / "keyring.json", _KEYRING, _VERSION, body)
        self._index = read_document(self._dir / "keyring.json", _KEYRING, _VERSION)

    def _signer(self, name: str, operator_passphrase: str) -> Signer:
        header, raw = _pp.read_locked(self._dir / name, _SIGNING, operator_passphrase, ("name", "public_key"))
        signer = Signer(header["name"], Ed25519PrivateKey.from_private_bytes(raw))
        if b64e(signer.private_key.public_key().public_bytes_raw()) != header["public_key"]:
            raise KeyFileError(f"{name} の公開鍵が秘密鍵と一致しません。ファイルが編集されています。")
        return signer


def _write_linkage(keys_dir: Path, linkage: LinkageSecret, passphrase: str, params: _pp.KdfParams) -> None:
    _pp.write_locked(keys_dir / f"linkage-{linkage.key_id}.json", _LINKAGE, {"key_id": linkage.key_id}, linkage.secret, passphrase, params)


def _write_signing(path: Path, purpose: str, name: str, passphrase: str, params: _pp.KdfParams) -> str:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes_raw()
    header = {"purpose": purpose, "name": name, "key_id": fingerprint("sk", public), "public_key": b64e(public)}
    _pp.write_locked(path, _SIGNING, header, private.private_bytes_raw(), passphrase, params)
    return Signer(name, private).verifier.vkey()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
