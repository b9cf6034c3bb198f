"""Ingest: the My Number agent's federation submission, verified and stored as its source's new snapshot.

Checks: the format and content hash, a registered and unrevoked agent on the
My Number network registered for the source, its signature, a sequence above
the last federation submission of that agent, the encoding schema, and the
federation key id of this gateway's federation (never the municipality's own
linkage key id: the two kinds of encoding are never compared).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import delete, func, insert, select

from gateway import models
from gateway.core import Gateway
from gateway.db import utcnow
from gateway.errors import GatewayError, UnknownEnvelopeVersion
from gateway.federation import config as _config
from keys import envelope
from keys.envelope import EnvelopeVersionError
from keys.errors import KeyIdMismatchError, KeysError
from keys.federation import read_federation_submission
from keys.linkage_secret import ensure_same_key_id
from linkage.schema import SchemaError, load_schema


def ingest(gw: Gateway, data: bytes, channel: str) -> dict[str, Any]:
    """Verify and store one federation submission; refusals are logged and raised as :class:`GatewayError`."""
    agent_id, sequence = None, None
    try:
        config = _config.load(gw.settings.home)
        try:
            manifest, signature, records = read_federation_submission(data)
        except EnvelopeVersionError as exc:
            raise UnknownEnvelopeVersion(str(exc)) from None
        except KeysError as exc:
            raise GatewayError(400, "malformed", str(exc)) from None
        agent_id, sequence = str(manifest["agent_id"]), manifest["sequence"]
        with gw.engine.connect() as conn:
            agent = conn.execute(select(models.agents).where(models.agents.c.agent_id == agent_id)).first()
            sources = set(conn.execute(select(models.agent_sources.c.source).where(models.agent_sources.c.agent_id == agent_id)).scalars())
            last = conn.execute(select(func.max(models.federation_submissions.c.sequence))
                                .where(models.federation_submissions.c.agent_id == agent_id)).scalar()
        if agent is None:
            raise GatewayError(401, "unknown_agent", f"エージェント {agent_id} は登録されていません。")
        try:
            envelope.verify(manifest, signature, Ed25519PublicKey.from_public_bytes(agent.signing_key))
        except envelope.EnvelopeSignatureError:
            raise GatewayError(401, "bad_signature", f"エージェント {agent_id} の連携圏用の提出の署名を検証できません。") from None
        if agent.status != "enrolled":
            raise GatewayError(403, "revoked", f"エージェント {agent_id} は失効しています。")
        if agent.network != "mynumber" or manifest["source"] not in sources:
            raise GatewayError(403, "source_not_registered", f"エージェント {agent_id} はマイナンバー利用事務系のデータ元「{manifest['source']}」の提出を登録されていません。")
        if manifest["municipality"] != config.code:
            raise GatewayError(403, "wrong_municipality", f"提出データは自治体 {manifest['municipality']} のもので、このゲートウェイ（{config.code}）のものではありません。")
        if isinstance(sequence, int) and last is not None and sequence <= last:
            # The same submission again (an agent's outbox resending after a lost answer) gets its first answer back.
            with gw.engine.connect() as conn:
                same = conn.execute(select(models.federation_submissions).where(
                    models.federation_submissions.c.agent_id == agent_id, models.federation_submissions.c.sequence == sequence,
                    models.federation_submissions.c.content_sha256 == manifest["content_sha256"])).first()
            if same is not None:
                return {"status": "duplicate", "submission_id": same.id, "records": same.record_count, "sequence": sequence}
        if not isinstance(sequence, int) or (last is not None and sequence <= last):
            raise GatewayError(409, "replay", f"連番 {sequence} は受信済みの連番（{last}）以下です。")
        try:
            schema = load_schema(manifest["schema_version"])
        except SchemaError as exc:
            raise GatewayError(422, "unknown_schema", str(exc)) from None
        try:
            ensure_same_key_id(manifest["federation_key_id"], config.federation_key_id)
        except KeyIdMismatchError as exc:
            raise GatewayError(422, "key_id_mismatch", str(exc)) from None
        bad = [r.token for r in records if len(r.clk) != schema.total_bytes or len(r.blocks) != len(schema.blocking_keys)]
        if bad:
            raise GatewayError(422, "bad_record", f"符号の長さが符号化方式と合わない記録があります（{len(bad)} 件）。")
        with gw.engine.begin() as conn:
            submission_id = conn.execute(insert(models.federation_submissions).values(
                agent_id=agent_id, sequence=sequence, content_sha256=manifest["content_sha256"],
                federation_key_id=manifest["federation_key_id"], source=manifest["source"], record_count=len(records),
                received_at=utcnow())).inserted_primary_key[0]
            conn.execute(delete(models.federation_records).where(models.federation_records.c.source == manifest["source"]))
            rows = [{"source": manifest["source"], "token": r.token, "submission_id": submission_id, "clk": r.clk, "present": r.present,
                     "blocks": np.asarray(r.blocks, dtype="<u8").tobytes(), "moved_in_from": r.moved_in_from or None,
                     "moved_out_to": r.moved_out_to or None} for r in records]
            if rows:
                conn.execute(insert(models.federation_records), rows)
    except GatewayError as exc:
        gw.event(channel, exc.status, exc.code, exc.detail, agent_id=agent_id, sequence=sequence if isinstance(sequence, int) else None,
                 path="federation submission")
        raise
    _config.audit(gw, f"agent:{agent_id}", "agent", "federation.submission.accept", "ok", target=f"{manifest['source']}#{sequence}")
    return {"status": "accepted", "submission_id": submission_id, "records": len(records), "sequence": sequence}
