"""The federation settings of one gateway (``<home>/federation.toml``) and its federation signing key.

The gateway signs its federation messages itself, unattended, so its key rests
like its audit key: a 0600 PKCS#8 file ``<home>/keys/federation-signing.pem``.
It is not the municipality identity key of ``tsunagu keys init`` (that one signs
the agents' enrolment files and stays with the key administrator); peers pin
this gateway's key from its identity file (``tsunagu federation identity``).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.core import Gateway
from gateway.errors import FederationConfigInvalid, FederationKeyInvalid, FederationNotConfigured
from transparency.tlog_checkpoint import CheckpointError, Signer, Verifier
from service.settings import signing_key_at_rest

CONFIG_FILE = "federation.toml"
KEY_FILE = "federation-signing.pem"
_CODE = r"^[0-9]{6}$"


class Peer(BaseModel):
    """Another municipality's gateway: code, name, URL (may be empty: bundles only) and pinned verifier key."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=_CODE)
    name: str = ""
    url: str = ""
    vkey: str
    #: the peer's TLS certificate or its private CA (PEM), pinned; empty: the system trust store
    ca_file: str = ""

    @field_validator("vkey")
    @classmethod
    def _vkey(cls, value: str) -> str:
        try:
            Verifier.from_vkey(value)
        except CheckpointError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("url は https://ホスト名:ポート の形で書いてください")
        return value.rstrip("/")


class FederationConfig(BaseModel):
    """What ``federation.toml`` holds; defaults live here."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=_CODE)
    name: str
    #: who a peer's caseworker contacts about a match (shown in every match answer)
    contact: str
    #: key id of the federation secret (the gateway never holds the secret)
    federation_key_id: str = Field(pattern=r"^lk_[0-9a-f]{16}$")
    #: the purpose of use (a purpose of the policy) under which federation happens; other purposes are refused
    purpose: str
    #: attributes a caseworker may choose to share in a handover answer
    shareable_attributes: list[str] = []
    #: per peer: query items answered per 24 hours, and requests per hour
    max_items_per_day: int = Field(default=20_000, ge=1)
    max_requests_per_hour: int = Field(default=60, ge=1)
    #: a handle given in an answer is valid this long
    handle_hours: int = Field(default=720, ge=1)
    #: a message over HTTP is valid this long; a bundle file this long
    message_seconds: int = Field(default=300, ge=10)
    bundle_hours: int = Field(default=168, ge=1)
    #: clock difference tolerated between gateways
    max_skew_seconds: int = Field(default=120, ge=0)
    peers: list[Peer] = []

    def peer(self, code: str) -> Peer | None:
        """The configured peer with ``code``, or None."""
        return next((p for p in self.peers if p.code == code), None)


def config_path(home: Path) -> Path:
    """Where the federation settings of the gateway at ``home`` live."""
    return home / CONFIG_FILE


def load(home: Path) -> FederationConfig:
    """Read ``federation.toml``; a gateway without one takes part in no federation (404)."""
    path = config_path(home)
    if not path.exists():
        raise FederationNotConfigured("このゲートウェイには連携圏の設定がありません（tsunagu federation init）。")
    try:
        return FederationConfig.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise FederationConfigInvalid(f"{path} に誤りがあります: {exc}") from None


def save(home: Path, config: FederationConfig) -> None:
    """Write ``federation.toml``."""
    config_path(home).write_text(tomli_w.dumps(config.model_dump(mode="json")), encoding="utf-8")


def signer(home: Path, code: str) -> Signer:
    """The gateway's federation signing key (made on first use)."""
    path = home / "keys" / KEY_FILE
    key = signing_key_at_rest(path)
    if key is None:
        raise FederationKeyInvalid(f"{path} は Ed25519 の秘密鍵ではありません。")
    return Signer(f"tsunagu-gateway-{code}", key)


def audit(gw: Gateway, actor: str, role: str, action: str, outcome: str, target: str = "", purpose: str = "", case_ref: str = "") -> None:
    """Append a federation step to the gateway's tamper-evident audit log (pseudonyms only), with purpose and case."""
    from keys.audit import AuditEntry

    gw.audit.append(AuditEntry.now(actor=actor, role=role, action=action, outcome=outcome, target=target, purpose=purpose, case_ref=case_ref))
