"""The federation secret: one linkage domain shared by municipalities, so that a child who moved can be found across the border.

A coordinator (the prefecture) makes the secret and hands it to each member
municipality wrapped for that member alone; the municipality's key
administrator hands it on to its My Number agent, wrapped for that agent. The
secret is a :class:`~keys.linkage_secret.LinkageSecret` of its own, so its key
id differs from every municipality's own linkage key id and
``ensure_same_key_id`` keeps federation encodings away from internal ones.

Wrapping is HPKE (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256),
HKDF-SHA256, AES-256-GCM) from ``cryptography``; the HPKE ``info`` binds the
federation, the key id and the recipient's key id, so a file opened for the
wrong purpose or recipient fails. Every wrapped file is signed (Ed25519) by its
issuer: the coordinator for members (pinned at the first install), the
municipality identity key (``keys init``) for agents (pinned at enrolment).

Files: coordinator home ``keys/federation-coordinator.json`` (signing key and
secret, locked under the coordinator passphrase); member (key administrator)
home ``keys/federation-receiving.json`` (X25519, locked), ``keys/federation-member.json``
(public, for the coordinator), ``keys/federation-secret-<key id>.json`` (locked),
``keys/federation-state.json``; agent home ``keys/federation-secret-<key id>.json``
(locked under the agent passphrase) and ``keys/federation-state.json``.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from keys import envelope
from keys import passphrase as _pp
from keys import labels
from keys.documents import b64d, b64e, canonical_json, read_document, write_document
from keys._ids import fingerprint
from transparency.tlog_checkpoint import CheckpointError, Signer, Verifier
from keys.enrolment import AgentPublic, load_agent_keys
from keys.errors import KeyFileError, KeysError, UnknownKeyIdError
from keys.keyring import Keyring
from keys.linkage_secret import LinkageSecret, generate_linkage_secret

_COORDINATOR = "tsunagu/federation-coordinator"
_RECEIVING = "tsunagu/federation-receiving-key"
_MEMBER = "tsunagu/federation-member"
_WRAPPED = "tsunagu/wrapped-federation-secret"
_INSTALLED = "tsunagu/federation-secret"
_STATE = "tsunagu/federation-state"
_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


class FederationKeyError(KeysError):
    """A federation key file is for someone else, signed by an unknown issuer, or does not open."""


@dataclass(frozen=True)
class CoordinatorInit:
    """What ``coordinator-init`` made: the federation's name, key id and the coordinator's verifier key."""

    federation: str
    key_id: str
    coordinator_vkey: str


def init_coordinator(home: Path, federation: str, passphrase: str, params: _pp.KdfParams = _pp.KdfParams()) -> CoordinatorInit:
    """Create a federation (its secret and the coordinator's signing key) in ``home``; refuses an existing one."""
    if not _NAME.match(federation):
        raise KeyFileError("連携圏の名前には英数字と . _ - だけを使ってください（例: ibaraki-2026）。")
    path = home / "keys" / "federation-coordinator.json"
    if path.exists():
        raise KeyFileError(f"{path} はすでにあります。別の連携圏は別のフォルダで作ってください。")
    secret, signer = generate_linkage_secret(), Ed25519PrivateKey.generate()
    vkey = Signer(f"tsunagu-federation-{federation}", signer).verifier.vkey()
    _pp.write_locked(path, _COORDINATOR, {"federation": federation, "key_id": secret.key_id, "coordinator": vkey},
                     signer.private_bytes_raw() + secret.secret, passphrase, params)
    return CoordinatorInit(federation, secret.key_id, vkey)


def _open_coordinator(home: Path, passphrase: str) -> tuple[dict[str, Any], Signer, LinkageSecret]:
    header, raw = _pp.read_locked(home / "keys" / "federation-coordinator.json", _COORDINATOR, passphrase,
                                  ("federation", "key_id", "coordinator"))
    verifier = Verifier.from_vkey(header["coordinator"])
    signer = Signer(verifier.name, Ed25519PrivateKey.from_private_bytes(raw[:32]))
    secret = LinkageSecret(header["key_id"], raw[32:])
    if signer.verifier.vkey() != header["coordinator"]:
        raise KeyFileError("federation-coordinator.json の公開鍵が秘密鍵と一致しません。ファイルが編集されています。")
    return header, signer, secret


@dataclass(frozen=True)
class Member:
    """A member municipality as the coordinator sees it: code, identity verifier key and receiving key."""

    municipality: str
    identity: str
    receiving_key: X25519PublicKey

    @property
    def receiving_key_id(self) -> str:
        """Key id of the member's federation receiving key."""
        return fingerprint("fr", self.receiving_key.public_bytes_raw())


def member_identity(home: Path, passphrase: str, params: _pp.KdfParams = _pp.KdfParams()) -> Path:
    """Key administrator: make (once) the federation receiving key; write the public member file for the coordinator.

    The member file is signed with the municipality identity key of ``keys init``, which proves that the
    municipality holding that identity asked for the secret.
    """
    keyring = Keyring(home)
    identity = keyring.federation_signer(passphrase)
    path = home / "keys" / "federation-receiving.json"
    if not path.exists():
        key = X25519PrivateKey.generate()
        _pp.write_locked(path, _RECEIVING, {"x25519": b64e(key.public_key().public_bytes_raw())}, key.private_bytes_raw(),
                         passphrase, params)
    x25519 = read_document(path, _RECEIVING, 1, ("x25519",))["x25519"]
    body = {"municipality": keyring.municipality, "identity": keyring.federation_vkey, "x25519": x25519}
    out = home / "keys" / "federation-member.json"
    write_document(out, _MEMBER, _VERSION, {**body, "signature": b64e(identity.private_key.sign(canonical_json(body)))}, mode=0o644)
    return out


def read_member(path: Path) -> Member:
    """Read a member file and check that its identity key signed it."""
    doc = read_document(path, _MEMBER, _VERSION, ("municipality", "identity", "x25519", "signature"))
    body = {k: doc[k] for k in ("municipality", "identity", "x25519")}
    try:
        Verifier.from_vkey(doc["identity"]).public_key.verify(b64d(doc["signature"], "署名"), canonical_json(body))
        return Member(doc["municipality"], doc["identity"], X25519PublicKey.from_public_bytes(b64d(doc["x25519"], "x25519")))
    except (InvalidSignature, CheckpointError, ValueError) as exc:
        raise FederationKeyError(f"{path} の署名が合いません。自治体から受け取った参加申請ファイルが編集されています。") from exc


def issue(home: Path, passphrase: str, member_path: Path, out_dir: Path) -> Path:
    """Coordinator: wrap the federation secret for one member (HPKE to its receiving key), signed by the coordinator."""
    header, signer, secret = _open_coordinator(home, passphrase)
    member = read_member(member_path)
    doc = _wrap(secret, header["federation"], member.receiving_key, member.receiving_key_id, signer,
                {"municipality": member.municipality, "recipient_identity": member.identity})
    out = out_dir / f"federation-{member.municipality}-{secret.key_id}.json"
    write_document(out, _WRAPPED, _VERSION, doc)
    return out


def install(home: Path, wrapped_path: Path, passphrase: str, coordinator_vkey: str | None = None,
            params: _pp.KdfParams = _pp.KdfParams()) -> tuple[str, str]:
    """Key administrator: unwrap the coordinator's file and keep the secret locked; returns (federation, key id).

    The coordinator key is pinned at the first install (or given); a file signed by another key is refused.
    """
    keyring = Keyring(home)
    doc = _read_wrapped(wrapped_path)
    if doc.get("municipality") != keyring.municipality:
        raise FederationKeyError(f"{wrapped_path} は自治体 {doc.get('municipality')} 宛てで、この自治体（{keyring.municipality}）宛てではありません。")
    state = _state(home)
    pinned = coordinator_vkey or state.get("issuer") or doc["issuer"]
    if doc["issuer"] != pinned or (state.get("issuer") and state["issuer"] != pinned):
        raise FederationKeyError(f"{wrapped_path} は登録済みの連携圏の調整者（都道府県）とは別の鍵で署名されています。")
    _verify(doc, pinned, wrapped_path)
    header, raw = _pp.read_locked(home / "keys" / "federation-receiving.json", _RECEIVING, passphrase, ("x25519",))
    receiving = X25519PrivateKey.from_private_bytes(raw)
    secret = _unwrap(doc, receiving, fingerprint("fr", receiving.public_key().public_bytes_raw()), wrapped_path)
    _pp.write_locked(home / "keys" / f"federation-secret-{secret.key_id}.json", _INSTALLED,
                     {"key_id": secret.key_id, "federation": doc["federation"]}, secret.secret, passphrase, params)
    write_document(home / "keys" / "federation-state.json", _STATE, _VERSION,
                   {"issuer": pinned, "federation": doc["federation"], "current_key_id": secret.key_id})
    return doc["federation"], secret.key_id


def load_secret(home: Path, passphrase: str) -> tuple[str, LinkageSecret]:
    """Key administrator or agent: the installed federation secret (federation name, secret)."""
    state = _state(home)
    if not state:
        raise UnknownKeyIdError("連携圏の鍵（federation secret）がまだ導入されていません（tsunagu federation install）。")
    path = home / "keys" / f"federation-secret-{state['current_key_id']}.json"
    if not path.exists():
        raise UnknownKeyIdError(f"連携圏の鍵 {state['current_key_id']} のファイルがありません。")
    header, raw = _pp.read_locked(path, _INSTALLED, passphrase, ("key_id", "federation"))
    return header["federation"], LinkageSecret(header["key_id"], raw)


def is_installed(home: Path) -> bool:
    """True if a federation secret was installed in ``home`` (agent or key administrator)."""
    return (home / "keys" / "federation-state.json").exists()


def enrol_agent(home: Path, passphrase: str, agent: AgentPublic, out_dir: Path) -> Path:
    """Key administrator: wrap the federation secret for one agent, signed by the municipality identity key."""
    federation, secret = load_secret(home, passphrase)
    signer = Keyring(home).federation_signer(passphrase)
    doc = _wrap(secret, federation, agent.receiving_key, agent.receiving_key_id, signer, {"agent_id": agent.agent_id})
    out = out_dir / f"{agent.agent_id}-federation-{secret.key_id}.json"
    write_document(out, _WRAPPED, _VERSION, doc)
    return out


def install_agent(home: Path, wrapped_path: Path, passphrase: str, params: _pp.KdfParams = _pp.KdfParams()) -> str:
    """Agent: unwrap the administrator's file; the issuer must be the key pinned when the linkage secret was installed."""
    agent = load_agent_keys(home, passphrase)
    doc = _read_wrapped(wrapped_path)
    if doc.get("agent_id") != agent.agent_id:
        raise FederationKeyError(f"{wrapped_path} はエージェント {doc.get('agent_id')} 宛てで、このエージェント（{agent.agent_id}）宛てではありません。")
    agent_state = home / "keys" / "agent-state.json"
    if not agent_state.exists():
        raise FederationKeyError("先に自治体の連携鍵を導入してください（tsunagu keys agent-install）。発行者の鍵をそこで確かめます。")
    pinned = read_document(agent_state, "tsunagu/agent-state", 1, ("issuer",))["issuer"]
    if doc["issuer"] != pinned:
        raise FederationKeyError(f"{wrapped_path} は、このエージェントの連携鍵を発行した鍵とは別の鍵で署名されています。")
    _verify(doc, pinned, wrapped_path)
    secret = _unwrap(doc, agent.receiving_key, agent.public.receiving_key_id, wrapped_path)
    _pp.write_locked(home / "keys" / f"federation-secret-{secret.key_id}.json", _INSTALLED,
                     {"key_id": secret.key_id, "federation": doc["federation"]}, secret.secret, passphrase, params)
    write_document(home / "keys" / "federation-state.json", _STATE, _VERSION,
                   {"issuer": pinned, "federation": doc["federation"], "current_key_id": secret.key_id})
    return secret.key_id


def _state(home: Path) -> dict[str, Any]:
    path = home / "keys" / "federation-state.json"
    return read_document(path, _STATE, _VERSION, ("issuer", "federation", "current_key_id")) if path.exists() else {}


def _info(doc: dict[str, Any]) -> bytes:
    return canonical_json({k: doc[k] for k in ("federation", "key_id", "receiving_key_id")} | {"v": labels.FEDERATION_WRAP})


def _wrap(secret: LinkageSecret, federation: str, recipient: X25519PublicKey, recipient_id: str, signer: Signer,
          to: dict[str, str]) -> dict[str, Any]:
    doc: dict[str, Any] = {**to, "federation": federation, "key_id": secret.key_id, "receiving_key_id": recipient_id,
                           "issuer": signer.verifier.vkey()}
    doc["ciphertext"] = b64e(_SUITE.encrypt(secret.secret, recipient, info=_info(doc)))
    doc["signature"] = b64e(signer.private_key.sign(canonical_json(doc)))
    return doc


def _read_wrapped(path: Path) -> dict[str, Any]:
    return read_document(path, _WRAPPED, _VERSION, ("federation", "key_id", "receiving_key_id", "issuer", "ciphertext", "signature"))


def _verify(doc: dict[str, Any], vkey: str, path: Path) -> None:
    signed = {k: v for k, v in doc.items() if k not in ("signature", "format", "version")}
    try:
        Verifier.from_vkey(vkey).public_key.verify(b64d(doc["signature"], "署名"), canonical_json(signed))
    except (InvalidSignature, CheckpointError) as exc:
        raise FederationKeyError(f"{path} の発行者の署名が合いません。ファイルが改ざんされています。") from exc


def _unwrap(doc: dict[str, Any], receiving: X25519PrivateKey, receiving_key_id: str, path: Path) -> LinkageSecret:
    if doc["receiving_key_id"] != receiving_key_id:
        raise FederationKeyError(f"{path} は別の受信鍵宛てです。参加申請（または登録）をやり直してください。")
    try:
        raw = _SUITE.decrypt(b64d(doc["ciphertext"], "暗号文"), receiving, info=_info(doc))
    except (InvalidTag, ValueError) as exc:
        raise FederationKeyError(f"{path} を開けません。この宛先のものではないか、改ざんされています。") from exc
    secret = LinkageSecret.from_secret(raw)
    if secret.key_id != doc["key_id"]:
        raise KeyFileError(f"{path} の鍵 ID が中身と一致しません。")
    return secret


# ---- the federation submission: an agent's federation encodings, an envelope (agent → its own gateway) ----------

#: This message's kind in the envelope (``keys.envelope``).
SUBMISSION_KIND = "federation-submission"
_CODE = re.compile(r"^[0-9]{6}$")


@dataclass(slots=True)
class FederationRecord:
    """One transferred child's federation encoding, with the municipality codes of the moves (6 digits or "")."""

    token: str
    clk: bytes
    present: int
    blocks: list[int]
    moved_in_from: str
    moved_out_to: str

    def to_line(self) -> bytes:
        """This record as one JSON line."""
        return json.dumps({"t": self.token, "c": base64.b64encode(self.clk).decode("ascii"), "p": self.present,
                           "b": [f"{b:016x}" if b else "" for b in self.blocks], "in": self.moved_in_from,
                           "out": self.moved_out_to}, separators=(",", ":")).encode("utf-8")


def write_federation_submission(manifest: dict[str, Any], records: list[FederationRecord], signing_key: Ed25519PrivateKey) -> bytes:
    """Serialise and sign (an envelope: signed manifest, then one line per record; the manifest binds them by SHA-256)."""
    try:
        return envelope.seal(SUBMISSION_KIND, manifest, [r.to_line() for r in records], signing_key)
    except envelope.EnvelopeError as exc:
        raise FederationKeyError(str(exc)) from None


def read_federation_submission(data: bytes) -> tuple[dict[str, Any], bytes, list[FederationRecord]]:
    """Parse a federation submission and check its content hash (not its signature): (manifest, signature, records).

    Raises :class:`keys.envelope.EnvelopeVersionError` for an old or unknown version,
    :class:`keys.envelope.EnvelopeContentError` when the records do not match the manifest's
    content hash or count (as a snapshot's reader does), :class:`FederationKeyError` otherwise.
    """
    try:
        env = envelope.open_envelope(data, (SUBMISSION_KIND,))
    except (envelope.EnvelopeVersionError, envelope.EnvelopeContentError):
        raise
    except envelope.EnvelopeError as exc:
        raise FederationKeyError(str(exc)) from None
    records = []
    for number, line in enumerate(env.lines, start=2):
        try:
            d = orjson.loads(line)  # orjson bounds the nesting depth itself (json would recurse into a RecursionError)
            record = FederationRecord(str(d["t"]), base64.b64decode(d["c"], validate=True), int(d["p"]),
                                      [int(b, 16) if b else 0 for b in d["b"]], str(d["in"]), str(d["out"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise FederationKeyError(f"連携圏の提出データの {number} 行目が読めません。") from None
        if not (record.moved_in_from or record.moved_out_to) or any(c and not _CODE.match(c) for c in (record.moved_in_from, record.moved_out_to)):
            raise FederationKeyError(f"連携圏の提出データの {number} 行目の市区町村コードが 6 桁の数字ではありません。")
        records.append(record)
    return env.manifest, env.signature, records
