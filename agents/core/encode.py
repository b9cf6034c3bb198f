"""Encode and seal: normalise + CLK-encode the valid rows, seal their identities to the escrow, keep only allowed attributes.

Per record this produces one submission line (``keys.submission.SubmittedRecord``):
the record token, the CLK with its presence flags and blocking tokens, the
identity sealed to the escrow public key under that token (name, kana, birth
date, sex, postal code, address and the department record id, as the
department holds them), and the attributes the policy lets this network and
source send. A row the normaliser cannot read becomes a :class:`Problem`.

Work is split so that both cores stay busy (the agent's throughput target is
20,000 records/s on 2 cores): worker processes forked after validation see
the records and tokens in inherited memory (nothing is pickled in), each
normalises and encodes its part with ``linkage.encode.encode_records``, while
the parent seals every source as one batch; once a part's encodings and the
seal are both done, a worker serialises that part's lines.
"""

from __future__ import annotations

import gc
import multiprocessing
import secrets
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from agents.core.config import SourceMapping
from agents.core.token import RecordTokeniser
from agents.core.validate import Problem, Validated, department_column
from keys.custody import EscrowPublicKey
from keys.linkage_secret import LinkageSecret
from keys.seal import SealedBatch, seal_batch
from keys.submission import SubmittedRecord
from linkage.encode import Encodings, RowError, encode_records
from linkage.record import IDENTITY_COLUMNS, CanonicalRecord
from linkage.schema import load_schema
from policy import Policy

#: Most rows in one unit of work. Each part gets a fresh encoder (its value caches start empty), so
#: fewer, larger parts cost less CPU: a 50,000-row file is one part per worker (about 6 % less CPU
#: than parts of 8,192); larger files are cut further so progress still moves.
PART_ROWS = 32768


@dataclass(slots=True)
class SourceInput:
    """One source's validated rows, ready to encode."""

    mapping: SourceMapping
    file: str
    validated: Validated
    batch_id: str


class SerialisedRecord:
    """A record already serialised by :meth:`SubmittedRecord.to_line` (in a worker), for ``write_submission``."""

    __slots__ = ("_line",)

    def __init__(self, line: bytes) -> None:
        self._line = line

    def to_line(self) -> bytes:
        """The record's JSON line, as ``SubmittedRecord.to_line`` wrote it."""
        return self._line


@dataclass(slots=True)
class Sealed:
    """One source's records as they travel, and what was held back."""

    source: str
    schema_version: str
    seal_header: dict
    records: list[SerialisedRecord]
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


# What forked workers read from inherited memory: records, their encoding order and tokens per source; secret, key id.
_JOB: dict[str, Any] = {}


def _encode_part(source: int, start: int, end: int) -> tuple[Encodings, list[int], list[RowError]]:
    records, order = _JOB["records"][source], _JOB["order"][source][start:end]
    encodings, index, errors = encode_records([records[i] for i in order], _JOB["secret"], _JOB["key_id"], workers=1)
    for e in errors:
        e.index = order[e.index]
    return encodings, [order[i] for i in index.tolist()], errors


def _random_order(records: Sequence[CanonicalRecord]) -> list[int]:
    """A fresh uniformly random permutation of the rows (OS randomness), in which they are encoded and sent.

    The order of a submission must carry no information: the gateway stores records in the order they
    arrive, and rows sorted by name gave a curious gateway almost every family name from the order alone
    (docs/privacy.md, order attack). Parts are cut from this order and their lines concatenated in it, so
    it is the order on the wire. A new permutation per submission, so no two submissions share one.
    (Sorting by name let the per-process caches hold fewer values twice, about 8 % less CPU; that is the price.)
    """
    order = list(range(len(records)))
    secrets.SystemRandom().shuffle(order)
    return order


def _serialise_part(source: int, encodings: Encodings, index: list[int], ciphertexts: list[bytes], allowed: tuple[str, ...]) -> list[bytes]:
    records, tokens = _JOB["records"][source], _JOB["tokens"][source]
    bits, present, blocks = encodings.bits, encodings.present.tolist(), encodings.blocks.tolist()
    lines = []
    for row, (i, sealed) in enumerate(zip(index, ciphertexts)):
        attributes = records[i].attributes
        lines.append(SubmittedRecord(
            token=tokens[i], clk=bits[row].tobytes(), present=present[row], blocks=blocks[row], sealed=sealed,
            attributes={a: v for a in allowed if (v := attributes.get(a, ""))},
        ).to_line())
    return lines


def _seal(escrow: EscrowPublicKey, item: SourceInput, tokens: list[str]) -> SealedBatch:
    identities = {
        token: {c: v for c in IDENTITY_COLUMNS if (v := getattr(record, c))} for token, record in zip(tokens, item.validated.records)
    }
    return seal_batch(escrow, item.mapping.source, item.batch_id, identities)


def _parts(inputs: Sequence[SourceInput], workers: int) -> list[tuple[int, int, int]]:
    """(source, start, end) parts of at most about PART_ROWS rows, equal within a source and a multiple of
    ``workers`` in number, so that no worker is left alone with a last part."""
    parts = []
    for s, item in enumerate(inputs):
        n = len(item.validated.records)
        count = -(-n // PART_ROWS)
        count = min(n, -(-count // workers) * workers) or 1
        parts.extend((s, i * n // count, (i + 1) * n // count) for i in range(count))
    return parts


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
    """Encode, seal and serialise every source; rows that cannot be normalised come back as problems."""
    tokens = []
    for item in inputs:
        tokeniser = RecordTokeniser(linkage.secret, item.mapping.source)
        tokens.append([tokeniser.token(r.record_id) for r in item.validated.records])
    workers = max(1, workers)
    parts = _parts(inputs, workers)
    decisions = [attribute_decisions(policy, network, item.mapping) for item in inputs]
    schema_version = load_schema().version  # loaded (and cached) before the fork, so no worker parses it again
    _JOB.update(records=[i.validated.records for i in inputs], order=[_random_order(i.validated.records) for i in inputs],
                tokens=tokens, secret=linkage.secret, key_id=linkage.key_id)
    errors: dict[int, list[RowError]] = {}
    lines: dict[int, list[bytes]] = {}
    # Frozen objects are skipped by the cyclic GC: the forked workers then never walk (and so copy) the
    # parent's heap, and the parent's own collections while sealing stay short.
    gc.freeze()
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool, \
                ThreadPoolExecutor(max_workers=1) as sealer:
            sealed: list[SealedBatch] = []
            to_encode = list(range(len(parts)))[::-1]
            encoded: list[tuple[int, Encodings, list[int]]] = []
            running: dict[Future[Any], tuple[str, int]] = {}

            def fill(sealing: Future[None] | None) -> None:
                # At most one task per worker in flight, serialising first: lines leave the workers as
                # soon as the seal allows, and no part's serialisation is left for the end.
                ready = sealing is not None and sealing.done()
                if ready:
                    sealing.result()  # a sealing error stops the run here
                while len(running) < workers:
                    if ready and encoded:
                        number, encodings, index = encoded.pop()
                        source = parts[number][0]
                        ciphertexts = [sealed[source].records[tokens[source][i]] for i in index]
                        running[pool.submit(_serialise_part, source, encodings, index, ciphertexts, decisions[source][0])] = ("lines", number)
                    elif to_encode:
                        number = to_encode.pop()
                        running[pool.submit(_encode_part, *parts[number])] = ("encode", number)
                    else:
                        return

            # The first submit forks every worker: that happens before the sealing thread starts, so no
            # child inherits a lock (OpenSSL's, the allocator's) that thread might be holding.
            fill(None)
            sealing = sealer.submit(lambda: sealed.extend(_seal(escrow, item, t) for item, t in zip(inputs, tokens)))
            while running or encoded:
                done, _ = wait([*running] if sealing.done() else [*running, sealing], return_when=FIRST_COMPLETED)
                for future in done.difference([sealing]):
                    kind, number = running.pop(future)
                    if kind == "encode":
                        encodings, index, errors[number] = future.result()
                        encoded.append((number, encodings, index))
                        if progress:
                            progress(parts[number][2] - parts[number][1])
                    else:
                        lines[number] = future.result()
                fill(sealing)
            sealing.result()
    finally:
        _JOB.clear()
        gc.unfreeze()
    out = [Sealed(item.mapping.source, schema_version, sealed[s].header.to_json(), [], [], *decisions[s]) for s, item in enumerate(inputs)]
    for number, (s, _, _) in enumerate(parts):
        item = inputs[s]
        out[s].records.extend(SerialisedRecord(line) for line in lines[number])
        out[s].problems.extend(
            Problem(item.file, item.validated.rows[e.index], department_column(item.mapping, e.field), e.field, e.reason)
            for e in errors[number]
        )
    return out
