"""Agent enrolment: agent key pairs, the administrator's agent registry, and the linkage secret wrapped for one agent.

Wrapping is HPKE-style (base mode, built from ``cryptography`` primitives):
ephemeral X25519 to the agent's receiving key, HKDF-SHA256 (salt: both public
keys), AES-256-GCM with the agent id, the linkage key id and the agent's key id
as associated data. The administrator signs the wrapped file with the
municipality identity key; the agent pins that key at its first install, so a
file from anyone else is refused.

Agent home layout: ``<home>/keys/agent-identity.json`` (Ed25519 + X25519
private keys, locked under the agent passphrase), ``agent-public.json`` (for
the administrator), ``agent-state.json`` (pinned issuer, current linkage key
id), ``linkage-<key id>.json`` (installed secrets, locked).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from keys import passphrase as _pp
from keys import labels
from keys.documents import b64d, b64e, canonical_json, read_document, write_document
from keys._ids import fingerprint
from transparency.tlog_checkpoint import CheckpointError, Signer, Verifier
from keys.errors import AgentError, KeyFileError, UnknownKeyIdError
from keys.linkage_secret import LinkageSecret

_IDENTITY = "tsunagu/agent-identity"
_PUBLIC = "tsunagu/agent-public-key"
_STATE = "tsunagu/agent-state"
_REGISTRY = "tsunagu/agent-registry"
_WRAPPED = "tsunagu/wrapped-linkage-secret"
_INSTALLED = "tsunagu/linkage-secret"
_VERSION = 1
_AGENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_WRAP_INFO = labels.ENROL_WRAP


@dataclass(frozen=True)
class AgentPublic:
    """An agent's public keys as the administrator registers them."""

    agent_id: str
    signing_key: Ed25519PublicKey
    receiving_key: X25519PublicKey

    @property
    def signing_key_id(self) -> str:
        """Key id of the agent's submission-signing key."""
        return fingerprint("ak", self.signing_key.public_bytes_raw())

    @property
    def receiving_key_id(self) -> str:
        """Key id of the agent's receiving (X25519) key."""
        return fingerprint("ar", self.receiving_key.public_bytes_raw())

    def _body(self) -> dict[str, str]:
        return {"agent_id": self.agent_id, "ed25519": b64e(self.signing_key.public_bytes_raw()),
                "x25519": b64e(self.receiving_key.public_bytes_raw())}


@dataclass(frozen=True)
class AgentKeys:
    """An agent's unlocked private keys (in the agent's memory only)."""

    agent_id: str
    signing_key: Ed25519PrivateKey = field(repr=False)
    receiving_key: X25519PrivateKey = field(repr=False)

    @property
    def public(self) -> AgentPublic:
        """The matching public keys."""
        return AgentPublic(self.agent_id, self.signing_key.public_key(), self.receiving_key.public_key())


def init_agent(home: Path, agent_id: str, passphrase: str, params: _pp.KdfParams = _pp.KdfParams()) -> Path:
    """Generate an agent's key pairs in ``home``; returns the public key file to give the administrator."""
    _check_agent_id(agent_id)
    keys_dir = home / "keys"
    if (keys_dir / "agent-identity.json").exists():
        raise KeyFileError(f"{keys_dir} にはすでにエージェントの鍵があります。")
    agent = AgentKeys(agent_id, Ed25519PrivateKey.generate(), X25519PrivateKey.generate())
    secret = agent.signing_key.private_bytes_raw() + agent.receiving_key.private_bytes_raw()
    _pp.write_locked(keys_dir / "agent-identity.json", _IDENTITY, agent.public._body(), secret, passphrase, params)
    body = agent.public._body()
    public_path = keys_dir / "agent-public.json"
    write_document(public_path, _PUBLIC, _VERSION,
                   {**body, "proof_of_possession": b64e(agent.signing_key.sign(canonical_json(body)))}, mode=0o644)
    return public_path


def load_agent_keys(home: Path, passphrase: str) -> AgentKeys:
    """Unlock an agent's private keys (for signing submissions and installing secrets)."""
    header, secret = _pp.read_locked(home / "keys" / "agent-identity.json", _IDENTITY, passphrase, ("agent_id",))
    agent = AgentKeys(header["agent_id"], Ed25519PrivateKey.from_private_bytes(secret[:32]),
                      X25519PrivateKey.from_private_bytes(secret[32:]))
    if agent.public._body() != {k: header[k] for k in ("agent_id", "ed25519", "x25519")}:
        raise KeyFileError("agent-identity.json の公開鍵が秘密鍵と一致しません。ファイルが編集されています。")
    return agent


def read_agent_public(path: Path) -> AgentPublic:
    """Read an agent's public key file and check its proof of possession."""
    doc = read_document(path, _PUBLIC, _VERSION, ("agent_id", "ed25519", "x25519", "proof_of_possession"))
    _check_agent_id(doc["agent_id"])
    try:
        public = AgentPublic(doc["agent_id"], Ed25519PublicKey.from_public_bytes(b64d(doc["ed25519"], "ed25519")),
                             X25519PublicKey.from_public_bytes(b64d(doc["x25519"], "x25519")))
        public.signing_key.verify(b64d(doc["proof_of_possession"], "署名"), canonical_json(public._body()))
    except (InvalidSignature, ValueError) as exc:
        raise AgentError(f"{path} の署名が合いません。エージェントの公開鍵ファイルが編集されています。") from exc
    return public


class AgentRegistry:
    """Enrolled and revoked agents, in ``<admin home>/agents.json``."""

    def __init__(self, home: Path) -> None:
        """Open (or start) the registry of ``home``."""
        self._path = home / "agents.json"
        self._agents: dict[str, dict[str, Any]] = (
            read_document(self._path, _REGISTRY, _VERSION, ("agents",))["agents"] if self._path.exists() else {}
        )

    def get(self, agent_id: str) -> dict[str, Any]:
        """The registry record of ``agent_id``; unknown agents are refused."""
        if agent_id not in self._agents:
            raise AgentError(f"エージェント {agent_id} は登録されていません。")
        return dict(self._agents[agent_id])

    def agents(self) -> dict[str, dict[str, Any]]:
        """Every agent record by agent id."""
        return {k: dict(v) for k, v in self._agents.items()}

    def check_enrollable(self, agent: AgentPublic) -> None:
        """Refuse a revoked agent, or a known agent id presenting other keys."""
        known = self._agents.get(agent.agent_id)
        if known is None:
            return
        if known["status"] == "revoked":
            raise AgentError(f"エージェント {agent.agent_id} は失効しています（{known.get('revoked_reason', '')}）。新しい ID で鍵を作り直してください。")
        if known["signing_key_id"] != agent.signing_key_id or known["receiving_key_id"] != agent.receiving_key_id:
            raise AgentError(f"エージェント {agent.agent_id} は別の鍵で登録済みです。鍵を替えるなら先に失効させてください。")

    def enrol(self, agent: AgentPublic, linkage: LinkageSecret, issuer: Signer, out_dir: Path) -> Path:
        """Register ``agent`` and write the linkage secret wrapped for it alone (signed by ``issuer``)."""
        self.check_enrollable(agent)
        wrapped = _wrap(linkage, agent, issuer)
        path = out_dir / f"{agent.agent_id}-{linkage.key_id}.json"
        write_document(path, _WRAPPED, _VERSION, wrapped)
        record = self._agents.get(agent.agent_id) or {
            "ed25519": b64e(agent.signing_key.public_bytes_raw()), "x25519": b64e(agent.receiving_key.public_bytes_raw()),
            "signing_key_id": agent.signing_key_id, "receiving_key_id": agent.receiving_key_id,
            "status": "enrolled", "enrolled_at": _now(), "linkage_key_ids": [],
        }
        record["linkage_key_ids"] = sorted({*record["linkage_key_ids"], linkage.key_id})
        self._save({**self._agents, agent.agent_id: record})
        return path

    def revoke(self, agent_id: str, reason: str) -> None:
        """Mark ``agent_id`` revoked: no further enrolment; the gateway refuses its submissions."""
        record = self.get(agent_id)
        if record["status"] == "revoked":
            raise AgentError(f"エージェント {agent_id} はすでに失効しています。")
        self._save({**self._agents, agent_id: {**record, "status": "revoked", "revoked_at": _now(), "revoked_reason": reason}})

    def _save(self, agents: dict[str, dict[str, Any]]) -> None:
        write_document(self._path, _REGISTRY, _VERSION, {"agents": agents}, mode=0o644)
        self._agents = agents


def install_linkage_secret(
    home: Path, wrapped_path: Path, passphrase: str, issuer_vkey: str | None = None, params: _pp.KdfParams = _pp.KdfParams()
) -> str:
    """Agent side: unwrap an enrolment file and store the secret locked under the agent passphrase.

    The issuer key is pinned at the first install (or given as ``issuer_vkey``);
    a file signed by any other key is refused. Returns the installed key id.
    """
    agent = load_agent_keys(home, passphrase)
    doc = read_document(wrapped_path, _WRAPPED, _VERSION,
                        ("agent_id", "key_id", "receiving_key_id", "ephemeral_x25519", "nonce", "ciphertext", "issuer", "signature"))
    if doc["agent_id"] != agent.agent_id:
        raise AgentError(f"{wrapped_path} はエージェント {doc['agent_id']} 宛てで、このエージェント（{agent.agent_id}）宛てではありません。")
    if doc["receiving_key_id"] != agent.public.receiving_key_id:
        raise AgentError(f"{wrapped_path} はこのエージェントの以前の鍵宛てです。管理者に再登録を依頼してください。")
    state_path = home / "keys" / "agent-state.json"
    state = read_document(state_path, _STATE, _VERSION, ("issuer",)) if state_path.exists() else {}
    pinned = issuer_vkey or state.get("issuer") or doc["issuer"]
    if doc["issuer"] != pinned or (state.get("issuer") and state["issuer"] != pinned):
        raise AgentError(f"{wrapped_path} は登録済みの発行者とは別の鍵で署名されています。")
    try:
        Verifier.from_vkey(pinned).public_key.verify(b64d(doc["signature"], "署名"), canonical_json(_signed_part(doc)))
    except (InvalidSignature, CheckpointError) as exc:
        raise AgentError(f"{wrapped_path} の発行者の署名が合いません。ファイルが改ざんされています。") from exc
    linkage = _unwrap(doc, agent, wrapped_path)
    _pp.write_locked(home / "keys" / f"linkage-{linkage.key_id}.json", _INSTALLED, {"key_id": linkage.key_id},
                     linkage.secret, passphrase, params)
    write_document(state_path, _STATE, _VERSION, {"issuer": pinned, "current_linkage_key_id": linkage.key_id})
    return linkage.key_id


def load_linkage_secret(home: Path, passphrase: str, key_id: str | None = None) -> LinkageSecret:
    """Agent side: unlock an installed linkage secret (default: the current one)."""
    state_path = home / "keys" / "agent-state.json"
    if not state_path.exists():
        raise UnknownKeyIdError("このエージェントには連携鍵がまだ導入されていません（tsunagu keys agent-install）。")
    key_id = key_id or read_document(state_path, _STATE, _VERSION, ("current_linkage_key_id",))["current_linkage_key_id"]
    path = home / "keys" / f"linkage-{key_id}.json"
    if not path.exists():
        raise UnknownKeyIdError(f"連携鍵 {key_id} はこのエージェントに導入されていません。")
    header, secret = _pp.read_locked(path, _INSTALLED, passphrase, ("key_id",))
    return LinkageSecret(header["key_id"], secret)


def _wrap(linkage: LinkageSecret, agent: AgentPublic, issuer: Signer) -> dict[str, Any]:
    ephemeral = X25519PrivateKey.generate()
    eph_pub = ephemeral.public_key().public_bytes_raw()
    key = _wrap_key(ephemeral.exchange(agent.receiving_key), eph_pub, agent.receiving_key.public_bytes_raw())
    nonce = os.urandom(12)
    ad = _wrap_ad(agent.agent_id, linkage.key_id, agent.receiving_key_id)
    doc = {"agent_id": agent.agent_id, "key_id": linkage.key_id, "receiving_key_id": agent.receiving_key_id,
           "ephemeral_x25519": b64e(eph_pub), "nonce": b64e(nonce),
           "ciphertext": b64e(AESGCM(key).encrypt(nonce, linkage.secret, ad)), "issuer": issuer.verifier.vkey()}
    doc["signature"] = b64e(issuer.private_key.sign(canonical_json(_signed_part(doc))))
    return doc


def _unwrap(doc: dict[str, Any], agent: AgentKeys, path: Path) -> LinkageSecret:
    eph_pub = b64d(doc["ephemeral_x25519"], "ephemeral_x25519")
    try:
        shared = agent.receiving_key.exchange(X25519PublicKey.from_public_bytes(eph_pub))
        key = _wrap_key(shared, eph_pub, agent.receiving_key.public_key().public_bytes_raw())
        secret = AESGCM(key).decrypt(b64d(doc["nonce"], "nonce"), b64d(doc["ciphertext"], "暗号文"),
                                     _wrap_ad(doc["agent_id"], doc["key_id"], doc["receiving_key_id"]))
    except (InvalidTag, ValueError) as exc:
        raise AgentError(f"{path} を開けません。このエージェント宛てではないか、改ざんされています。") from exc
    linkage = LinkageSecret.from_secret(secret)
    if linkage.key_id != doc["key_id"]:
        raise KeyFileError(f"{path} の連携鍵の鍵 ID が中身と一致しません。")
    return linkage


def _wrap_key(shared: bytes, eph_pub: bytes, recipient_pub: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_pub + recipient_pub, info=_WRAP_INFO).derive(shared)


def _wrap_ad(agent_id: str, key_id: str, receiving_key_id: str) -> bytes:
    return canonical_json({"agent_id": agent_id, "key_id": key_id, "receiving_key_id": receiving_key_id, "v": _WRAP_INFO.decode()})


def _signed_part(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("signature", "format", "version")}


def _check_agent_id(agent_id: str) -> None:
    if not isinstance(agent_id, str) or not _AGENT_ID.match(agent_id):
        raise AgentError(f"エージェント ID {agent_id!r} が不正です（英数字・. _ - で 64 文字まで）。")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
