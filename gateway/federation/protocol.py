"""Signed federation messages between gateways, and the checks every received message passes.

A message is an envelope (``keys.envelope``) of kind ``federation.<kind>``
(``federation.query`` …), one line, signed by the sending gateway's
federation key. Its manifest names ``from`` and ``to`` (municipality
codes), ``purpose``, ``federation_key_id``, a random ``nonce``, ``issued_at``,
``expires_at`` and the ``body``. The same bytes go over HTTPS or in a carried
bundle file (a bundle simply gets a longer validity).

Checks, in order — the first failure refuses the message with its reason
(counted and logged in ``ingest_events``; once the signature verified, also in
the audit log, under the peer's name): a configured peer, its
signature (after the envelope's version and kind), addressed to us, the purpose, the federation key id, the time
window, the nonce not seen before (replay).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError

from gateway import models
from gateway.core import Gateway
from gateway.db import utcnow
from gateway.errors import (
    BadSignature,
    Expired,
    GatewayError,
    KeyIdMismatch,
    MalformedMessage,
    NotYetValid,
    PurposeRefused,
    Replay,
    UnknownEnvelopeVersion,
    UnknownPeer,
    ValidityTooLong,
    WrongKind,
    WrongRecipient,
)
from gateway.federation import config as _config
from gateway.federation.config import FederationConfig
from keys import envelope
from transparency.tlog_checkpoint import Signer, Verifier

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def sign_message(config: FederationConfig, signer: Signer, kind: str, to: str, body: dict[str, Any], *, bundle: bool = False) -> bytes:
    """A signed message of ``kind`` to peer ``to``; valid for the HTTP window, or the bundle window with ``bundle``."""
    now = datetime.now(timezone.utc)
    valid = timedelta(hours=config.bundle_hours) if bundle else timedelta(seconds=config.message_seconds)
    message = {"from": config.code, "to": to, "purpose": config.purpose,
               "federation_key_id": config.federation_key_id, "nonce": secrets.token_hex(16),
               "issued_at": now.isoformat(timespec="seconds"), "expires_at": (now + valid).isoformat(timespec="seconds"),
               "body": body}
    return envelope.seal(envelope_kind(kind), message, (), signer.private_key)


def envelope_kind(kind: str) -> str:
    """The envelope kind of a federation message of ``kind`` (``query`` → ``federation.query``)."""
    return f"federation.{kind}"


def verify_message(gw: Gateway, config: FederationConfig, data: bytes, expected_kind: str, channel: str) -> dict[str, Any]:
    """Verify a received message and return its manifest; every refusal is logged with its reason and raised."""
    peer_code, authenticated = "?", False
    try:
        try:
            # Any kind is parsed here, so that a message of another kind is refused as such (wrong_kind).
            env = envelope.open_envelope(data.strip())
        except envelope.EnvelopeVersionError as exc:
            raise UnknownEnvelopeVersion(str(exc)) from None
        except envelope.EnvelopeError as exc:
            raise MalformedMessage(f"連携圏のメッセージとして読めません: {exc}") from None
        message, kind = env.manifest, env.kind
        if kind != envelope_kind(expected_kind):
            raise WrongKind(f"ここでは「{expected_kind}」のメッセージだけを受け付けます（受信: {kind!r}）。")
        peer_code = str(message["from"])
        peer = config.peer(peer_code)
        if peer is None:
            raise UnknownPeer(f"自治体 {peer_code} は連携先として設定されていません。")
        try:
            env.verify(Verifier.from_vkey(peer.vkey).public_key, f"自治体 {peer_code} ")
        except (envelope.EnvelopeSignatureError, ValueError, TypeError):
            raise BadSignature(f"自治体 {peer_code} のメッセージの署名が合いません。") from None
        authenticated = True
        if message.get("to") != config.code:
            raise WrongRecipient(f"このメッセージは自治体 {message.get('to')} 宛てです。")
        if message.get("purpose") != config.purpose:
            raise PurposeRefused(f"利用目的「{message.get('purpose')}」の連携は受け付けていません（この連携圏の目的: {config.purpose}）。")
        decision = gw.policy.may_use_purpose(config.purpose, utcnow().date())
        if not decision.allowed:
            raise PurposeRefused(decision.reason)
        if message.get("federation_key_id") != config.federation_key_id:
            raise KeyIdMismatch(f"連携圏の鍵 ID が違います（{message.get('federation_key_id')}、期待: {config.federation_key_id}）。鍵 ID の異なる符号は比較できません。")
        if not isinstance(message.get("body"), dict):
            raise MalformedMessage("メッセージの body がオブジェクトではありません。")
        expires = _check_time(config, message)
        _check_nonce(gw, peer_code, str(message.get("nonce", "")), expires)
        return message
    except GatewayError as exc:
        # Before the signature verifies, the sender is anonymous: its refusal is counted (gw.event), not signed into the log.
        path = f"federation {expected_kind} from {peer_code if authenticated else '(unverified)'}"
        gw.event(channel, exc.status, exc.code, exc.detail, path=path[:256])
        if authenticated:
            _config.audit(gw, f"peer:{peer_code}", "peer", f"federation.{expected_kind}.receive", f"refused:{exc.code}")
        raise


def _time(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise MalformedMessage("メッセージの時刻が読めません。") from None
    if parsed.tzinfo is None:
        raise MalformedMessage("メッセージの時刻にタイムゾーンがありません。")
    return parsed.astimezone(timezone.utc).replace(tzinfo=None)


def _check_time(config: FederationConfig, message: dict[str, Any]) -> datetime:
    issued, expires, now = _time(message.get("issued_at")), _time(message.get("expires_at")), utcnow()
    skew = timedelta(seconds=config.max_skew_seconds)
    if issued > now + skew:
        raise NotYetValid("メッセージの発行時刻が未来です（時計のずれを確認してください）。")
    if now > expires + skew:
        raise Expired("メッセージの有効期限が切れています。")
    if expires - issued > timedelta(hours=config.bundle_hours):
        raise ValidityTooLong(f"メッセージの有効期間が上限（{config.bundle_hours} 時間）を超えています。")
    return expires + skew


def _check_nonce(gw: Gateway, peer: str, nonce: str, expires: datetime) -> None:
    if not (16 <= len(nonce) <= 64):
        raise MalformedMessage("メッセージの nonce が不正です。")
    with gw.engine.begin() as conn:
        conn.execute(delete(models.federation_nonces).where(models.federation_nonces.c.expires_at < utcnow()))
        try:
            conn.execute(insert(models.federation_nonces).values(peer=peer, nonce=nonce, expires_at=expires))
        except IntegrityError:
            raise Replay(f"自治体 {peer} のこのメッセージは受信済みです（再送・再利用は受け付けません）。") from None
