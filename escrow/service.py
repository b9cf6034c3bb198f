"""One escrow deployment opened in this process: settings, store, audit log, gateway verifier and the vault.

``<home>`` holds::

    escrow.toml            settings (municipality; optional overrides, see escrow.config)
    escrow-private.json    the sealed escrow private key with the custodians' share commitments,
                           copied from the key administrator's home (no share, no passphrase)
    gateway-verifier.txt   the gateway's audit checkpoint verifier key (C2SP vkey)
    audit-signing.pem      Ed25519 key signing the escrow's own audit checkpoints (0600)
    audit-verifier.txt     its verifier key, for auditors
    escrow.db              users, sessions, requests and the escrow's audit log
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import tomli_w
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from escrow import db
from escrow.config import CONFIG_FILE, Settings, load_settings
from policy import load_policy
from escrow.errors import (
    AlreadyInitialised,
    AuditKeyInvalid,
    EscrowError,
    GatewayVerifierInvalid,
    GatewayVerifierMissing,
    NotInitialised,
    SealedKeyInvalid,
    SettingsInvalid,
    SetupRefused,
    WitnessInvalid,
)
from escrow.vault import Offered, Progress, Vault
from keys import custody
from keys.audit import AuditEntry
from service.audit_store import AuditStore
from transparency.tlog_checkpoint import CheckpointError, Signer, Verifier
from service.frontdoor.refusals import RefusalCounter
from service.frontdoor.throttle import LoginThrottle
from service.settings import read_signing_key, write_signing_key
from keys.errors import KeysError
from keys.keyring import Keyring
from transparency.tlog_witness import Witness, WitnessError

log = logging.getLogger("tsunagu.escrow")

SEALED_KEY = "escrow-private.json"
GATEWAY_VERIFIER = "gateway-verifier.txt"
AUDIT_KEY = "audit-signing.pem"
AUDIT_VERIFIER = "audit-verifier.txt"
POLICY = "policy.toml"
_SIGNER_NAME = "tsunagu-escrow"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Escrow:
    """The escrow at ``settings.home``: use :meth:`open`."""

    def __init__(self, settings: Settings, signer: Signer, gateway: Verifier) -> None:
        """Assemble an opened escrow (see :meth:`open`); it starts sealed."""
        self.settings = settings
        self.engine = db.open_engine(str(settings.database_path))
        self.audit = AuditStore(self.engine, signer, settings.audit_origin)
        self.audit_vkey = signer.verifier.vkey()
        self.gateway = gateway
        self.vault = Vault(settings.home / SEALED_KEY)
        # The municipality's policy, when installed, decides a purpose's approvals
        # and record limit here: the escrow takes no filing's word for them.
        self.policy = load_policy(settings.home / POLICY) if (settings.home / POLICY).exists() else None
        #: failed sign-ins per account and client address (the gateway's implementation: service.frontdoor)
        self.throttle = LoginThrottle(self.engine)
        #: refusals of unauthenticated requests: counted, summarised into one audit entry per period
        self.refusals = RefusalCounter(self._summarise_refusals)
        self.witness_folder = settings.home / "witness"

    @classmethod
    def open(cls, home: Path, **overrides: Any) -> Escrow:
        """Open the escrow set up by :func:`init_home` at ``home``."""
        if not (home / CONFIG_FILE).exists():
            raise NotInitialised(f"{home} はエスクローのデータフォルダではありません。先に `tsunagu escrow init --home {home}` を実行してください。")
        try:
            settings = load_settings(home, **overrides)
        except ValidationError as exc:
            where = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
            raise SettingsInvalid(f"{home / CONFIG_FILE} または環境変数の設定が正しくありません（{where}）。") from None
        signer = _load_signer(settings.home / AUDIT_KEY)
        gateway = _load_verifier(settings.home / GATEWAY_VERIFIER)
        try:
            escrow = cls(settings, signer, gateway)
        except KeysError as exc:
            raise SealedKeyInvalid(str(exc)) from None
        try:
            # The escrow witnesses the gateway's log: it cosigns only checkpoints signed
            # by the gateway key it was set up with, and consistent with the last one.
            witness = Witness.ensure(escrow.witness_folder, f"{settings.audit_origin}/witness")
            origin = f"tsunagu.gateway/{settings.municipality}"
            if witness.logs.get(origin) != gateway.vkey():
                witness.trust(origin, gateway.vkey())
        except WitnessError as exc:
            raise WitnessInvalid(str(exc)) from None
        return escrow

    def record(self, actor: str, role: str, action: str, outcome: str, connection: Any = None, **fields: str) -> None:
        """Append an entry to the escrow's audit log; it is committed before this returns.

        With ``connection`` (a SQLAlchemy connection inside the transaction making
        the change) the entry commits together with that change.
        """
        self.audit.append(AuditEntry.now(actor=actor, role=role, action=action, outcome=_CONTROL.sub(" ", outcome)[:500], **fields),
                          connection=connection)

    def refuse(self, actor: str, role: str, action: str, error: EscrowError, **fields: str) -> EscrowError:
        """Log a refusal (audit log and service log) and hand the error back to be raised."""
        if not error.logged:
            self.record(actor, role, action, f"refused: {error.code}: {error.detail}", **fields)
            log.warning("%s by %s refused (%s %s): %s", action, actor, error.status, error.code, error.detail)
            error.logged = True
        return error

    def refuse_anonymous(self, action: str, error: EscrowError) -> EscrowError:
        """Count a refusal of an unauthenticated request (not one audit entry each: see service.frontdoor.refusals)."""
        if not error.logged:
            if self.refusals.admit(f"{action}:{error.code}"):
                log.warning("%s by an unauthenticated client refused (%s %s): %s", action, error.status, error.code, error.detail)
            error.logged = True
        return error

    def offer_share(self, username: str, content: bytes, passphrase: str) -> Offered:
        """One custodian's share offered (``Vault.offer``), logged the same from the API and the web page.

        The share was checked to be the signed-in custodian's own, so the entry names who really unsealed.
        """
        try:
            progress = self.vault.offer(username, content, passphrase)
        except EscrowError as exc:
            raise self.refuse(username, "custodian", "escrow.unseal", exc, target=self.vault.escrow_key_id) from None
        share = f"share {progress.share_index} of {username}"
        outcome = f"unsealed with {share}" if not progress.sealed else f"{share} accepted {progress.progress}/{progress.threshold}"
        self.record(username, "custodian", "escrow.unseal", outcome, target=progress.escrow_key_id)
        return progress

    def seal(self, username: str, roles: frozenset[str]) -> Progress:
        """Drop the escrow key and the shares offered so far from memory, logged first (as custodian, or else as admin)."""
        role = "custodian" if "custodian" in roles else "admin"
        self.record(username, role, "escrow.seal", "sealed", target=self.vault.escrow_key_id)
        return self.vault.seal()

    def _summarise_refusals(self, outcome: str, total: int) -> None:
        self.record("(未認証)", "-", "refusals.summary", outcome)

    def close(self) -> None:
        """Write the pending refusal counts, then release the database connections."""
        self.refusals.flush()
        self.engine.dispose()


def init_home(home: Path, admin_home: Path, gateway_vkey: str) -> Escrow:
    """Set up an escrow home from the key administrator's home: the sealed key (with share commitments) only.

    No share file and no passphrase is read; the escrow's own audit signing
    key is made here. ``escrow.toml`` is written last, so an interrupted setup
    is simply run again.
    """
    if (home / CONFIG_FILE).exists():
        raise AlreadyInitialised(f"{home} には既にエスクローがあります。")
    try:
        Verifier.from_vkey(gateway_vkey)
        ring = Keyring(admin_home)
        sealed = ring.escrow_sealed_path.read_bytes()
        custody.sealed_info(ring.escrow_sealed_path)
    except (CheckpointError, KeysError) as exc:
        raise SetupRefused(str(exc)) from None
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_new(home / SEALED_KEY, sealed, 0o600)
    _write_new(home / GATEWAY_VERIFIER, gateway_vkey.strip().encode("utf-8") + b"\n", 0o644)
    key = Ed25519PrivateKey.generate()
    (home / AUDIT_KEY).unlink(missing_ok=True)
    write_signing_key(home / AUDIT_KEY, key)
    _write_new(home / AUDIT_VERIFIER, Signer(_SIGNER_NAME, key).verifier.vkey().encode("utf-8") + b"\n", 0o644)
    _write_new(home / CONFIG_FILE, tomli_w.dumps({"municipality": ring.municipality}).encode("utf-8"), 0o644)
    return Escrow.open(home)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # A leftover from an interrupted setup is replaced; a finished setup was refused above.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _load_signer(path: Path) -> Signer:
    # The escrow logs refusals while sealed, so its checkpoint key rests like a
    # TLS server key: a 0600 PKCS#8 file in its home, not under the escrow KEK.
    try:
        key = read_signing_key(path)
    except (FileNotFoundError, ValueError) as exc:
        raise AuditKeyInvalid(f"{path} がないか、秘密鍵として読めません。") from exc
    if key is None:
        raise AuditKeyInvalid(f"{path} は Ed25519 の秘密鍵ではありません。")
    return Signer(_SIGNER_NAME, key)


def _load_verifier(path: Path) -> Verifier:
    try:
        return Verifier.from_vkey(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise GatewayVerifierMissing(f"ゲートウェイの検証鍵 {path} がありません。") from exc
    except CheckpointError as exc:
        raise GatewayVerifierInvalid(f"{path}: {exc}") from exc
