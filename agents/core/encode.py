"""Encode and seal: normalise + CLK-encode the valid rows, seal their identities to the escrow, keep only allowed attributes.

Per record this produces a :class:`keys.submission.SubmittedRecord`: the
record token, the CLK with its presence flags and blocking tokens, the
identity sealed to the escrow public key under that token (name, kana, birth
date, sex, postal code, address and the department record id, as the
department holds them), and the attributes the policy lets this network and
source send. A row the normaliser cannot read becomes a :class:`Problem`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from agents.core.config import SourceMapping
from agents.core.token import RecordTokeniser
from agents.core.validate import Problem, Validated, department_column
from keys.custody import EscrowPublicKey
from keys.linkage_secret import LinkageSecret
from keys.seal import seal_batch
from keys.submission import SubmittedRecord
from linkage.encode import encode_sources
from linkage.record import IDENTITY_COLUMNS
from policy import Policy


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
    """Encode every source in one worker pool, then seal each source as one batch."""
    encoded = encode_sources([i.validated.records for i in inputs], linkage.secret, linkage.key_id, workers=workers, progress=progress)
    out = []
    for item, (encodings, index, errors) in zip(inputs, encoded):
        mapping, validated = item.mapping, item.validated
        problems = [
            Problem(item.file, validated.rows[e.index], department_column(mapping, e.field), e.field, e.reason) for e in errors
        ]
        tokeniser = RecordTokeniser(linkage.secret, mapping.source)
        allowed, refused = attribute_decisions(policy, network, mapping)
        kept = [validated.records[i] for i in index.tolist()]
        tokens = [tokeniser.token(r.record_id) for r in kept]
        identities = {
            token: {c: v for c in IDENTITY_COLUMNS if (v := getattr(record, c))} for token, record in zip(tokens, kept)
        }
        batch = seal_batch(escrow, mapping.source, item.batch_id, identities)
        bits, present, blocks = encodings.bits, encodings.present.tolist(), encodings.blocks.tolist()
        records = [
            SubmittedRecord(
                token=token,
                clk=bits[row].tobytes(),
                present=present[row],
                blocks=blocks[row],
                sealed=batch.records[token],
                attributes={a: v for a in allowed if (v := record.attributes.get(a, ""))},
            )
            for row, (token, record) in enumerate(zip(tokens, kept))
        ]
        out.append(Sealed(mapping.source, encodings.schema_version, batch.header.to_json(), records, problems, allowed, refused))
    return out
