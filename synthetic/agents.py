"""A stand-in agent for benchmarks and tests: encodes, seals and signs a synthetic town in the real submission format.

It uses the very primitives an agent uses (``linkage.encode.encode_records``,
``keys.seal.seal_batch``, ``keys.submission.write_submission``) with a
throwaway linkage secret and escrow key of its own, generated here for
synthetic data only; the gateway itself never sees either. Record tokens come
from the agents' own tokeniser (``agents.core.token``), so a synthetic record
gets the token a real agent with the same secret gives the same record id.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agents.core.token import RecordTokeniser
from keys.custody import EscrowPublicKey
from keys.enrolment import AgentKeys, init_agent, load_agent_keys
from keys.passphrase import KdfParams
from keys.linkage_secret import LinkageSecret, generate_linkage_secret
from keys.seal import seal_batch
from keys.submission import SubmittedRecord, write_submission
from linkage.encode import encode_records
from linkage.record import IDENTITY_COLUMNS, CanonicalRecord
from linkage.schema import current_version
from service.pools import ForkPool

#: Which network each synthetic source sits on (as in the shipped default policy).
SOURCE_NETWORK = {"residents": "mynumber", "maternal": "mynumber", "school": "edu", "npo": "internet"}
# Synthetic agents' keys protect nothing real; the minimum Argon2id cost keeps set-up fast.
_FAST_KDF = KdfParams(memory_kib=1024, iterations=1, lanes=1)


_PASSPHRASE = "synthetic-agent-passphrase"


@dataclass
class SyntheticAgent:
    """One agent with keys made by ``keys.enrolment.init_agent`` in its own home; ``public_file`` is for registration."""

    agent_id: str
    network: str
    linkage: LinkageSecret
    escrow: EscrowPublicKey
    home: Path
    keys: AgentKeys = field(init=False)
    public_file: Path = field(init=False)
    sequence: int = 0

    def __post_init__(self) -> None:
        self.public_file = init_agent(self.home, self.agent_id, _PASSPHRASE, _FAST_KDF)
        self.keys = load_agent_keys(self.home, _PASSPHRASE)

    def submit(self, source: str, rows: list[dict[str, str]], *, attributes: dict[str, str] | None = None,
               extra: dict[str, Any] | None = None, sequence: int | None = None) -> bytes:
        """Encode, seal and sign ``rows`` of ``source`` as the next snapshot submission."""
        canonical = [CanonicalRecord.from_mapping(r) for r in rows]
        encodings, index, _errors = encode_records(canonical, self.linkage.secret, self.linkage.key_id, runner=ForkPool(2))
        tokeniser = RecordTokeniser(self.linkage.secret, source)
        tokens = [tokeniser.token(canonical[i].record_id) for i in index]
        identities = {t: {c: rows[i].get(c, "") for c in IDENTITY_COLUMNS} for t, i in zip(tokens, index)}
        batch_id = uuid.uuid4().hex
        sealed = seal_batch(self.escrow, source, batch_id, identities)
        records = []
        for row, (t, i) in enumerate(zip(tokens, index)):
            attrs = {k: v for k, v in canonical[i].attributes.items() if v}
            attrs.update(attributes or {})
            records.append(SubmittedRecord(t, encodings.bits[row].tobytes(), int(encodings.present[row]),
                                           [int(b) for b in encodings.blocks[row]], sealed.records[t], attrs))
        if sequence is None:
            self.sequence += 1
            sequence = self.sequence
        manifest = {
            "agent_id": self.agent_id, "signing_key_id": self.keys.public.signing_key_id, "municipality": "000000",
            "network": self.network, "source": source, "schema_version": current_version(),
            "linkage_key_id": self.linkage.key_id, "escrow_key_id": self.escrow.key_id, "sequence": sequence,
            "batch_id": batch_id, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "mode": "snapshot",
            "seal_header": sealed.header.to_json(), **(extra or {}),
        }
        return write_submission(manifest, records, self.keys.signing_key)


def synthetic_agents(sources: list[str], home: Path) -> dict[str, SyntheticAgent]:
    """One agent per source (homes under ``home``), sharing a fresh linkage secret and escrow public key."""
    linkage = generate_linkage_secret()
    escrow = EscrowPublicKey.from_raw(X25519PrivateKey.generate().public_key().public_bytes_raw())
    return {s: SyntheticAgent(f"agent-{s}-{os.urandom(3).hex()}", SOURCE_NETWORK[s], linkage, escrow, home / f"agent-{s}")
            for s in sources}
