"""Encode and seal: normalise + CLK-encode the valid rows, seal their identities to the escrow, keep only allowed attributes.

Per record this produces a :class:`keys.submission.SubmittedRecord`: the
record token, the CLK with its presence flags and blocking tokens, the
identity sealed to the escrow public key under that token (name, kana, birth
date, sex, postal code, address and the department record id, as the
department holds them), and the attributes the policy lets this network and
source send. A row the normaliser cannot read becomes a :class:`Problem`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

from agents.core.config import SourceMapping
from agents.core.token import RecordTokeniser
from agents.core.validate import Problem, Validated, department_column
from keys.custody import EscrowPublicKey
from keys.linkage_secret import LinkageSecret
from keys.seal import SealedBatch, seal_batch
from keys.submission import SubmittedRecord
from linkage.encode import encode_sources
from linkage.record import IDENTITY_COLUMNS
from policy import Policy

# Small chunks keep both workers busy to the end (a 4096-row tail chunk left one core idle).
_CHUNK = 1024


@dataclass(slots=True)
class SourceInput:
    """One source's validated rows, ready to encode."""

    mapping: SourceMapping
    file: str
    validated: Validated
    batch_id: str


@dataclass(slots=True)
class Sealed:
    """One source's records as they travel, and what was held back."""

    source: str
    schema_version: str
    seal_header: dict
    records: list[SubmittedRecord]
    problems: list[Problem] = field(default_factory=list)
    attributes_sent: tuple[str, ...] = ()
    attributes_refused: dict[str, str] = field(default_factory=dict)


def attribute_decisions(policy: Policy, network: str, mapping: SourceMapping) -> tuple[tuple[str, ...], dict[str, str]]:
    """The mapped attributes the policy lets ``network``/source send, and the refused ones with the reason."""
    allowed, refused = [], {}
    for name in mapping.attributes:
        decision = policy.may_send(network, mapping.source, name)
        if decision.allowed:
            allowed.append(name)
        else:
            refused[name] = decision.reason
    return tuple(allowed), refused


def encode_and_seal(
    inputs: Sequence[SourceInput],
    linkage: LinkageSecret,
    escrow: EscrowPublicKey,
    policy: Policy,
    network: str,
    *,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> list[Sealed]:
    """Encode every source in one worker pool while a thread seals each source as one batch.

    Sealing needs only the record ids and identities, not the encodings, so it
    runs while the workers encode; a row that then fails normalisation simply
    leaves its ciphertext unused.
    """
    tokens = [_tokens(linkage, item) for item in inputs]
    with ThreadPoolExecutor(max_workers=1) as sealer:
        batches = [sealer.submit(_seal, escrow, item, t) for item, t in zip(inputs, tokens)]
        encoded = encode_sources([i.validated.records for i in inputs], linkage.secret, linkage.key_id, workers=workers,
                                 chunk_size=_CHUNK, progress=progress)
        sealed_batches = [b.result() for b in batches]
    out = []
    for item, source_tokens, batch, (encodings, index, errors) in zip(inputs, tokens, sealed_batches, encoded):
        mapping, validated = item.mapping, item.validated
        problems = [
            Problem(item.file, validated.rows[e.index], department_column(mapping, e.field), e.field, e.reason) for e in errors
        ]
        allowed, refused = attribute_decisions(policy, network, mapping)
        bits, present, blocks = encodings.bits, encodings.present.tolist(), encodings.blocks.tolist()
        ciphertexts = batch.records
        records = []
        for row, i in enumerate(index.tolist()):
            token, record = source_tokens[i], validated.records[i]
            records.append(SubmittedRecord(
                token=token,
                clk=bits[row].tobytes(),
                present=present[row],
                blocks=blocks[row],
                sealed=ciphertexts[token],
                attributes={a: v for a in allowed if (v := record.attributes.get(a, ""))},
            ))
        out.append(Sealed(mapping.source, encodings.schema_version, batch.header.to_json(), records, problems, allowed, refused))
    return out


def _tokens(linkage: LinkageSecret, item: SourceInput) -> list[str]:
    tokeniser = RecordTokeniser(linkage.secret, item.mapping.source)
    return [tokeniser.token(r.record_id) for r in item.validated.records]


def _seal(escrow: EscrowPublicKey, item: SourceInput, tokens: list[str]) -> SealedBatch:
    identities = {
        token: {c: v for c in IDENTITY_COLUMNS if (v := getattr(record, c))} for token, record in zip(tokens, item.validated.records)
    }
    return seal_batch(escrow, item.mapping.source, item.batch_id, identities)
