"""Federation: encodings of transferred children (転入・転出) under the federation secret, for linkage with other municipalities.

When the agent holds a federation secret (``tsunagu federation agent-install``),
every snapshot of a source whose rows carry ``moved_in_from`` (転入元) or
``moved_out_to`` (転出先) — the 住民記録 of the My Number agent — is followed by
a federation submission (``keys.federation``, an envelope of kind ``federation-submission``): only the
children with a 6-digit municipality code in either column, encoded with
``linkage.encode`` under the federation secret. The address is left out of
these encodings: it changes with the move, and another municipality has no
business comparing it. The record token is the same as in the source's own
submission, so the gateway can tell its caseworkers which child a peer asked
about; the gateway never sends that token to a peer.

Delivery: through the agent's outbox like every submission (kept while the
gateway cannot be reached), pushed to ``POST /api/v1/federation/submissions``
of the agent's gateway, or written next to the other bundles as
``<agent>-<seq>-federation.jsonl`` (imported with ``tsunagu federation ingest``).
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from datetime import datetime, timezone
from typing import Sequence

from agents.core.config import AgentConfig, SourceMapping
from agents.core.deliver import Outbox
from agents.core.package import SourceInput
from agents.core.submission import SequenceCounter
from agents.core.token import RecordTokeniser
from keys import federation as _federation
from keys.enrolment import AgentKeys
from keys.linkage_secret import LinkageSecret
from linkage.encode import encode_records
from linkage.record import CanonicalRecord

MOVE_ATTRIBUTES = ("moved_in_from", "moved_out_to")
_CODE = re.compile(r"^[0-9]{6}$")


def is_transferred(record: CanonicalRecord) -> bool:
    """Whether ``record`` has a 転入元 or 転出先 municipality code (the snapshot collects these while streaming)."""
    return any(_CODE.match(record.attributes.get(a, "").strip()) for a in MOVE_ATTRIBUTES)


def tracks_moves(mapping: SourceMapping) -> bool:
    """Whether ``mapping`` maps a 転入元 or 転出先 column at all."""
    return any(a in mapping.attributes for a in MOVE_ATTRIBUTES)


def build(config: AgentConfig, agent: AgentKeys, linkage: LinkageSecret, federation: LinkageSecret, item: SourceInput,
          sequence: int) -> bytes:
    """The signed federation submission of one source's transferred children."""
    records = rows = item.transferred
    # No address in a federation encoding: it changed with the move and is none of the peer's business.
    stripped = [dataclasses.replace(r, postal_code="", address="") for r in rows]
    encodings, index, _errors = encode_records(stripped, federation.secret, federation.key_id)
    tokeniser = RecordTokeniser(linkage.secret, item.mapping.source)
    out = []
    present, blocks = encodings.present.tolist(), encodings.blocks.tolist()
    for row, i in enumerate(index.tolist()):
        attrs = records[i].attributes
        codes = [attrs.get(a, "").strip() for a in MOVE_ATTRIBUTES]
        out.append(_federation.FederationRecord(
            tokeniser.token(records[i].record_id), encodings.bits[row].tobytes(), present[row], blocks[row],
            *(c if _CODE.match(c) else "" for c in codes)))
    # Encoded in input order; sent in a fresh random one (the order must say nothing about names, docs/privacy.md).
    secrets.SystemRandom().shuffle(out)
    manifest = {
        "agent_id": agent.agent_id, "signing_key_id": agent.public.signing_key_id, "municipality": config.agent.municipality,
        "source": item.mapping.source, "schema_version": encodings.schema_version, "federation_key_id": federation.key_id,
        "sequence": sequence, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return _federation.write_federation_submission(manifest, out, agent.signing_key)


def enqueue(config: AgentConfig, agent: AgentKeys, passphrase: str, linkage: LinkageSecret, items: Sequence[SourceInput],
            outbox: Outbox, counter: SequenceCounter) -> int:
    """Put the federation submissions of ``items`` (sources just snapshotted) that have transferred children in the outbox.

    They are delivered with the rest (pushed to the federation route, or written as bundles) and, like the rest,
    wait in the outbox while the gateway cannot be reached. Nothing happens when no federation secret is installed.
    Returns how many were made.
    """
    if not _federation.is_installed(config.home):
        return 0
    _name, federation = _federation.load_secret(config.home, passphrase)
    made = 0
    for item in items:
        if not item.transferred:
            continue
        sequence = counter.take()
        data = build(config, agent, linkage, federation, item, sequence)
        outbox.put(sequence, data, {"source": f"{item.mapping.source}:federation", "kind": "federation",
                                    "records": len(item.transferred), "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        made += 1
    return made
