"""Ingest: the My Number agent's federation submission, a kind of the one ingest pipeline (``gateway.ingest.run``).

The pipeline parses the envelope and authenticates the agent (registered,
its registered key, its signature, not revoked). This kind's own checks: a
My Number agent registered for the source, this gateway's municipality, a
sequence above the last federation submission of that agent (the same one
again gets its first answer), the encoding schema, and the federation key id
of this gateway's federation (never the municipality's own linkage key id:
the two kinds of encoding are never compared). Then the records replace the
source's federation records.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select

from gateway import agents as _agents
from gateway import ingest as _ingest
from gateway import models
from gateway.core import Gateway
from gateway.db import utcnow
from gateway.errors import (
    BadRecord,
    KeyIdMismatch,
    Replay,
    SourceNotRegistered,
    UnknownSchema,
    WrongMunicipality,
)
from gateway.federation import config as _config
from keys.errors import KeyIdMismatchError
from keys.federation import FederationRecord, read_federation_submission
from keys.linkage_secret import ensure_same_key_id
from linkage.schema import SchemaError, load_schema


def ingest(gw: Gateway, data: bytes, channel: str) -> dict[str, Any]:
    """Verify and store one federation submission; refusals are logged and raised (``gateway.errors``)."""
    return _ingest.run(gw, FEDERATION_SUBMISSION, data, channel, "federation submission")


def _accept(gw: Gateway, manifest: dict[str, Any], records: list[FederationRecord], agent: _agents.RegisteredAgent,
            channel: str, where: dict[str, Any]) -> dict[str, Any]:
    config = _config.load(gw.settings.home)
    agent_id, sequence, source = agent.agent_id, manifest["sequence"], manifest["source"]
    if agent.network != "mynumber" or source not in agent.sources:
        raise SourceNotRegistered(f"エージェント {agent_id} はマイナンバー利用事務系のデータ元「{source}」の提出を登録されていません。")
    if manifest["municipality"] != config.code:
        raise WrongMunicipality(f"提出データは自治体 {manifest['municipality']} のもので、このゲートウェイ（{config.code}）のものではありません。")
    fs = models.federation_submissions
    with gw.engine.connect() as conn:
        last = conn.execute(select(func.max(fs.c.sequence)).where(fs.c.agent_id == agent_id)).scalar()
        # The same submission again (an agent's outbox resending after a lost answer) gets its first answer back.
        same = conn.execute(select(fs).where(fs.c.agent_id == agent_id, fs.c.sequence == sequence,
                                             fs.c.content_sha256 == manifest["content_sha256"])).first()
    if same is not None:
        return {"status": "duplicate", "submission_id": same.id, "records": same.record_count, "sequence": sequence}
    if last is not None and sequence <= last:
        raise Replay(f"連番 {sequence} は受信済みの連番（{last}）以下です。")
    try:
        schema = load_schema(manifest["schema_version"])
    except SchemaError as exc:
        raise UnknownSchema(str(exc)) from None
    try:
        ensure_same_key_id(manifest["federation_key_id"], config.federation_key_id)
    except KeyIdMismatchError as exc:
        raise KeyIdMismatch(str(exc)) from None
    bad = [r.token for r in records if len(r.clk) != schema.total_bytes or len(r.blocks) != len(schema.blocking_keys)]
    if bad:
        raise BadRecord(f"符号の長さが符号化方式と合わない記録があります（{len(bad)} 件）。")
    with gw.engine.begin() as conn:
        submission_id = conn.execute(insert(fs).values(
            agent_id=agent_id, sequence=sequence, content_sha256=manifest["content_sha256"],
            federation_key_id=manifest["federation_key_id"], source=source, record_count=len(records),
            received_at=utcnow())).inserted_primary_key[0]
        conn.execute(delete(models.federation_records).where(models.federation_records.c.source == source))
        rows = [{"source": source, "token": r.token, "submission_id": submission_id, "clk": r.clk, "present": r.present,
                 "blocks": np.asarray(r.blocks, dtype="<u8").tobytes(), "moved_in_from": r.moved_in_from or None,
                 "moved_out_to": r.moved_out_to or None} for r in records]
        if rows:
            conn.execute(insert(models.federation_records), rows)
    _config.audit(gw, f"agent:{agent_id}", "agent", "federation.submission.accept", "ok", target=f"{source}#{sequence}")
    return {"status": "accepted", "submission_id": submission_id, "records": len(records), "sequence": sequence}


#: The federation submission (``keys.federation``), refused with the snapshot's codes (``gateway.ingest.Kind``).
FEDERATION_SUBMISSION = _ingest.Kind("federation-submission", read_federation_submission, _accept)
