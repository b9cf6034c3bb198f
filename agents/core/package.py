"""Package: one source's validated rows through normalise → encode → seal into submission lines, spooled, then parts.

This step decides what a submission line holds (``keys.submission.SubmittedRecord``):
the record token and CLK with its presence flags and blocking tokens
(:mod:`agents.core.encode`), the identity sealed to the escrow under that
token (:mod:`agents.core.seal`), and the attributes the policy lets this
network and source send (:func:`attribute_decisions`). A row the normaliser
cannot read (:mod:`agents.core.normalise`) becomes a :class:`Problem`.

It works as a stream, in bounded memory whatever the file's size: the
validated rows go in chunks of :data:`CHUNK_ROWS` to worker processes (both
cores busy), each of which runs its chunk through normalise, encode and seal
and serialises it; the lines are appended to a spool file in the agent's
home. At most a few chunks are in flight, and results are taken in order, so
the problems reach the report in row order.

The spool then becomes the snapshot's parts (:func:`parts`): the number of
parts follows from the record count and size, each record goes to a part
drawn at random (``os.urandom``), and each part is shuffled (random keys from
``os.urandom``) before it is signed. The order of the records in what the
gateway receives, and which part a record is in, are a uniformly random
permutation, fresh for every snapshot: they say nothing about the file's
order (宛名番号, 住所, 登録順) or about the records.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import sqlite3
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Sequence, overload

import numpy as np

from agents.core.config import SourceMapping
from agents.core.encode import SourceEncoder
from agents.core.normalise import Refused, normalise
from agents.core.seal import seal
from agents.core.validate import Problem
from keys.custody import EscrowPublicKey
from keys.linkage_secret import LinkageSecret
from keys.seal import BatchSealer
from keys.submission import SubmittedRecord
from linkage.record import CanonicalRecord
from linkage.schema import load_schema
from policy import Policy

#: Rows per unit of work sent to a worker process (small enough that a few in flight cost little memory).
CHUNK_ROWS = 4096
#: Chunks in flight per worker: enough to keep it busy while the parent reads the next rows.
_IN_FLIGHT = 2
#: Largest part in bytes, whatever ``records_per_part`` says: half the gateway's default body limit (256 MiB).
PART_BYTES = 128 << 20


class RecordSpool(Sequence[CanonicalRecord]):
    """Records kept on disk in the order added (a SQLite file, page cache capped): a list whose memory does not grow.

    The transferred children of a city's 住民記録 are collected while its file streams and encoded for federation
    after the snapshot (``agents.core.federation``); kept here, the agent's memory does not grow with them.
    """

    def __init__(self, path: Path) -> None:
        """A new, empty spool at ``path`` (replaced if there); its folder is made private (0700)."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.unlink(missing_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self.path = path
        self._db = sqlite3.connect(path)
        self._db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-4096;"
                               "CREATE TABLE records (n INTEGER PRIMARY KEY, record TEXT NOT NULL);")
        self._count = 0

    def append(self, record: CanonicalRecord) -> None:
        """Add ``record`` at the end."""
        self._db.execute("INSERT INTO records VALUES (?, ?)",
                         (self._count, json.dumps(dataclasses.asdict(record), ensure_ascii=False)))
        self._count += 1

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> CanonicalRecord: ...
    @overload
    def __getitem__(self, index: slice) -> list[CanonicalRecord]: ...

    def __getitem__(self, index: int | slice) -> CanonicalRecord | list[CanonicalRecord]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(index)
        (text,) = self._db.execute("SELECT record FROM records WHERE n = ?", (index,)).fetchone()
        return CanonicalRecord(**json.loads(text))

    def __iter__(self) -> Iterator[CanonicalRecord]:
        for (text,) in self._db.execute("SELECT record FROM records ORDER BY n"):
            yield CanonicalRecord(**json.loads(text))

    def close(self) -> None:
        """Close and remove the file."""
        self._db.close()
        self.path.unlink(missing_ok=True)


@dataclass(slots=True)
class SourceInput:
    """One source about to be encoded: its mapping, file and batch id, and (for federation) its transferred rows."""

    mapping: SourceMapping
    file: str
    batch_id: str
    #: the validated records with a 転入元 or 転出先 code (``agents.core.federation``), collected while streaming
    #: (a run keeps them on disk, :class:`RecordSpool`)
    transferred: list[CanonicalRecord] | RecordSpool = field(default_factory=list)


@dataclass(slots=True)
class Spooled:
    """One source's encoded and sealed records, as lines in a spool file, and what was held back."""

    source: str
    schema_version: str
    seal_header: dict
    spool: Path
    records: int
    bytes: int
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


# What a forked worker works with: its source's encoder, the batch's sealer and the attributes allowed.
_WORKER: dict[str, Any] = {}


def _worker_init(secret: bytes, key_id: str, source: str, sealer: BatchSealer, allowed: tuple[str, ...]) -> None:
    _WORKER.update(encoder=SourceEncoder(secret, key_id, source), sealer=sealer, allowed=allowed)


#: One row for a worker: its number, its record, and the values the department wrote where the record links on others.
Item = tuple[int, CanonicalRecord, dict[str, str] | None]


def _work(chunk: list[Item]) -> tuple[bytes, int, list[Refused]]:
    """One chunk through normalise → encode → seal, serialised: its lines, how many, and the rows refused."""
    encoder: SourceEncoder = _WORKER["encoder"]
    sealer, allowed = _WORKER["sealer"], _WORKER["allowed"]
    good, kept, written = [], [], []
    refused: list[Refused] = []
    for row, record, as_written in chunk:
        normalised = normalise(row, record)
        if isinstance(normalised, Refused):
            refused.append(normalised)
            continue
        good.append(normalised)
        kept.append(record)
        written.append(as_written)
    encodings = encoder.encode(good)
    tokens = encoder.tokens(kept)
    bits, present, blocks = encodings.bits, encodings.present.tolist(), encodings.blocks.tolist()
    lines = []
    for i, record in enumerate(kept):
        token, attributes = tokens[i], record.attributes
        lines.append(SubmittedRecord(
            token=token, clk=bits[i].tobytes(), present=present[i], blocks=blocks[i], sealed=seal(sealer, token, record, written[i]),
            attributes={a: v for a in allowed if (v := attributes.get(a, ""))},
        ).to_line())
    return b"\n".join(lines), len(lines), refused


Row = tuple[int, CanonicalRecord | None, Problem | None]


def package_to_spool(
    item: SourceInput,
    rows: Iterable[Row],
    linkage: LinkageSecret,
    escrow: EscrowPublicKey,
    policy: Policy,
    network: str,
    spool: Path,
    report: Callable[[Problem], None],
    *,
    keep: Callable[[CanonicalRecord], bool] | None = None,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> Spooled:
    """Normalise, encode, seal and serialise one source's validated ``rows`` into ``spool``, in bounded memory.

    ``report`` gets every problem (validation's and the normaliser's) in row order; ``keep(record)``
    says which records to also collect in ``item.transferred``. A :class:`~agents.core.read.SourceError`
    raised while reading the rows stops it (the spool is then incomplete: the caller discards it).
    """
    mapping = item.mapping
    allowed, refused = attribute_decisions(policy, network, mapping)
    sealer = BatchSealer(escrow, mapping.source, item.batch_id)
    schema_version = load_schema().version
    workers = max(1, workers)
    count = size = 0
    spool.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(spool, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as out, ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("fork"), initializer=_worker_init,
            initargs=(linkage.secret, linkage.key_id, mapping.source, sealer, allowed)) as pool:
        in_flight: deque[tuple[Future[tuple[bytes, int, list[Refused]]], list[Problem], int]] = deque()

        def drain_one() -> None:
            nonlocal count, size
            future, problems, rows_in_chunk = in_flight.popleft()
            blob, n, errors = future.result()
            if n:
                out.write(blob)
                out.write(b"\n")
                count += n
                size += len(blob) + 1
            problems.extend(r.problem(item.file, mapping) for r in errors)
            for problem in sorted(problems, key=lambda p: p.row):
                report(problem)
            if progress:
                progress(rows_in_chunk)

        chunk: list[Item] = []
        problems: list[Problem] = []
        seen = 0
        for number, record, problem in rows:
            seen += 1
            if problem is not None:
                problems.append(problem)
            if record is not None:
                # A kept problem: the record links on another value than the one the department wrote, which is sealed.
                chunk.append((number, record, {problem.field: problem.written} if problem is not None and problem.written else None))
                if keep is not None and keep(record):
                    item.transferred.append(record)
            if len(chunk) >= CHUNK_ROWS:
                in_flight.append((pool.submit(_work, chunk), problems, seen))
                chunk, problems, seen = [], [], 0
                while len(in_flight) > workers * _IN_FLIGHT:
                    drain_one()
        if chunk or problems:
            in_flight.append((pool.submit(_work, chunk), problems, seen))
        while in_flight:
            drain_one()
        out.flush()
        os.fsync(out.fileno())
    return Spooled(mapping.source, schema_version, sealer.header.to_json(), spool, count, size, allowed, refused)


def part_count(records: int, size: int, records_per_part: int) -> int:
    """How many parts a snapshot of ``records`` lines (``size`` bytes) travels in: on average at most
    ``records_per_part`` records and :data:`PART_BYTES` bytes each (a part drawn at random is a few hundred records
    above or below the average; the gateway's limit is twice :data:`PART_BYTES`)."""
    return max(1, -(-records // records_per_part), -(-size // PART_BYTES))


def _random_u64(n: int) -> np.ndarray:
    return np.frombuffer(os.urandom(8 * n), dtype=np.uint64) if n else np.zeros(0, dtype=np.uint64)


def parts(spooled: Spooled, records_per_part: int, folder: Path) -> list[Path]:
    """Scatter the spool's lines into part files under ``folder``, each line to a part drawn at random.

    Returns the part files (one, the spool itself, when the snapshot fits in one part). Drawing a part
    per line from ``os.urandom`` (modulo bias below 2**-50 for any possible number of parts) and then
    shuffling each part (:func:`shuffled_lines`) gives a uniformly random order of the whole snapshot.
    """
    count = part_count(spooled.records, spooled.bytes, records_per_part)
    if count == 1:
        return [spooled.spool]
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths = [folder / f"part-{number:05d}" for number in range(1, count + 1)]
    handles: list[BinaryIO] = [open(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") for p in paths]
    try:
        with spooled.spool.open("rb") as spool:
            while lines := spool.readlines(8 << 20):
                for line, target in zip(lines, (_random_u64(len(lines)) % np.uint64(count)).tolist()):
                    handles[target].write(line)
    finally:
        for handle in handles:
            handle.close()
    spooled.spool.unlink()
    return paths


def shuffled_lines(path: Path) -> list[bytes]:
    """The lines of one part file (without newlines), in a uniformly random order (sort by random 64-bit keys)."""
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    order = np.argsort(_random_u64(len(lines)), kind="stable")
    return [lines[i] for i in order.tolist()]

