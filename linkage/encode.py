"""Encode normalised records into field-segmented CLKs (Bloom filters) and blocking keys.

Each segment of the schema is a clkhash v3 linkage schema and is hashed
exactly as clkhash does it: per-feature keys from clkhash's HKDF key lists and
``blake_hash_token`` (keyed BLAKE2b, ``bitsPerToken`` strategy). The encoder
adds three things around clkhash: n-grams containing an unknown character are
dropped before hashing (an unknown character neither agrees nor disagrees), a
token cache (names repeat, so most tokens are hashed once per run), and numpy
assembly of whole batches. ``tests/linkage/test_encode.py`` checks bit for bit
that every segment equals clkhash's own ``generate_clks`` output.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from enum import IntFlag
from typing import Callable, Iterable, Sequence

import numpy as np
from clkhash.bloomfilter import blake_hash_token
from clkhash.key_derivation import generate_key_lists
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from linkage.errors import FieldError
from linkage.record import UNKNOWN_CHAR, CanonicalRecord, NormalisedRecord
from linkage.schema import CURRENT_VERSION, EncodingSchema, load_schema


class Present(IntFlag):
    """Which fields a record has: travels with the encoding so missing never means 'different'."""

    NAME_FAMILY = 1 << 0
    NAME_GIVEN = 1 << 1
    NAME_FULL = 1 << 2
    NAME_SPLIT_INFERRED = 1 << 3
    KANA_FAMILY = 1 << 4
    KANA_GIVEN = 1 << 5
    KANA_FULL = 1 << 6
    KANA_SPLIT_INFERRED = 1 << 7
    BIRTH_YEAR = 1 << 8
    BIRTH_MONTH = 1 << 9
    BIRTH_DAY = 1 << 10
    SEX = 1 << 11
    POSTAL_CODE = 1 << 12
    ADDRESS = 1 << 13


@dataclass(slots=True)
class Encodings:
    """A batch of encoded records: rows align with the input order.

    ``bits`` holds one packed encoding per row (big-endian bit order, as
    bitarray and clkhash use), ``present`` the :class:`Present` flags and
    ``blocks`` one keyed blocking token per schema blocking key (0 = none).
    """

    schema_version: str
    key_id: str
    bits: np.ndarray
    present: np.ndarray
    blocks: np.ndarray

    def __len__(self) -> int:
        return int(self.bits.shape[0])

    @classmethod
    def concatenate(cls, parts: Sequence["Encodings"]) -> "Encodings":
        """Join batches encoded under the same schema and key."""
        first = parts[0]
        for p in parts[1:]:
            if (p.schema_version, p.key_id) != (first.schema_version, first.key_id):
                raise ValueError("encodings under different schemas or keys cannot be joined")
        return cls(
            first.schema_version,
            first.key_id,
            np.concatenate([p.bits for p in parts]),
            np.concatenate([p.present for p in parts]),
            np.concatenate([p.blocks for p in parts]),
        )

    def take(self, index: np.ndarray) -> "Encodings":
        """The rows at ``index``."""
        return Encodings(self.schema_version, self.key_id, self.bits[index], self.present[index], self.blocks[index])


def derive_key(secret: bytes, purpose: str, version: str = CURRENT_VERSION) -> bytes:
    """A 32-byte key for one purpose, derived from the linkage secret with HKDF-SHA256."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"{version}|{purpose}".encode()).derive(secret)


@dataclass(frozen=True, slots=True)
class _Feature:
    segment: str
    identifier: str
    key: bytes
    k: int
    length: int
    offset: int
    ngram: int  # 0 = exact token


def _bigrams(value: str, n: int) -> list[str]:
    pad = " " * (n - 1)
    word = pad + value + pad
    return [g for g in (word[i : i + n] for i in range(len(word) - n + 1)) if UNKNOWN_CHAR not in g]


class Encoder:
    """Encodes :class:`NormalisedRecord` batches under one linkage secret and schema."""

    def __init__(self, secret: bytes, key_id: str, schema: EncodingSchema | None = None):
        if len(secret) < 16:
            raise ValueError("the linkage secret must be at least 16 bytes")
        self.schema = schema or load_schema()
        self.key_id = key_id
        self._features: dict[tuple[str, str], _Feature] = {}
        for seg in self.schema.segments:
            seg_secret = derive_key(secret, f"segment|{seg.key_group}", self.schema.version)
            clk = seg.clk
            keys = generate_key_lists(
                seg_secret,
                len(clk.fields),
                key_size=clk.kdf_key_size,
                salt=clk.kdf_salt,
                info=clk.kdf_info,
                kdf=clk.kdf_type,
                hash_algo=clk.kdf_hash,
            )
            for field, field_keys in zip(clk.fields, keys):
                props = field.hashing_properties
                comparator = props.comparator
                n = getattr(comparator, "n", 0)
                self._features[(seg.name, field.identifier)] = _Feature(
                    seg.name, field.identifier, bytes(field_keys[0]), props.strategy.bits_per_token(1)[0], clk.l, seg.offset, n
                )
        self._block_key = derive_key(secret, "blocking", self.schema.version)
        self._cache: dict[tuple[_Feature, str], tuple[int, ...]] = {}

    def _positions(self, feature: _Feature, token: str) -> tuple[int, ...]:
        cached = self._cache.get((feature, token))
        if cached is None:
            idx = blake_hash_token(token.encode("utf-8"), feature.k, feature.key, feature.length)
            cached = tuple(feature.offset + i for i in idx)
            self._cache[(feature, token)] = cached
        return cached

    def _add(self, out: list[int], segment: str, identifier: str, value: str | None) -> bool:
        if not value:
            return False
        feature = self._features[(segment, identifier)]
        tokens = _bigrams(value, feature.ngram) if feature.ngram else (value,)
        for token in tokens:
            out.extend(self._positions(feature, token))
        return bool(tokens)

    def _block(self, name: str, value: str) -> int:
        digest = hashlib.blake2b(f"{name}|{value}".encode(), key=self._block_key, digest_size=8).digest()
        return int.from_bytes(digest, "big") or 1

    def record_positions(self, rec: NormalisedRecord) -> tuple[list[int], int, list[int]]:
        """Bit positions, presence flags and blocking tokens of one record."""
        pos: list[int] = []
        flags = 0
        family, given = rec.family_name, rec.given_name
        if self._add(pos, "name_family", "name_part", family):
            flags |= Present.NAME_FAMILY
        if self._add(pos, "name_given", "name_part", given):
            flags |= Present.NAME_GIVEN
        if family or given:
            if rec.name_script == "latin" and family and given:
                full = "".join(sorted((family, given)))  # alphabet names come in either order
            else:
                full = (family or "") + (given or "")
            if self._add(pos, "name_full", "name_full", full):
                flags |= Present.NAME_FULL
        if rec.name_split_inferred:
            flags |= Present.NAME_SPLIT_INFERRED
        if self._add(pos, "kana_family", "kana_part", rec.family_kana):
            flags |= Present.KANA_FAMILY
        if self._add(pos, "kana_given", "kana_part", rec.given_kana):
            flags |= Present.KANA_GIVEN
        if rec.family_kana or rec.given_kana:
            if self._add(pos, "kana_full", "kana_full", (rec.family_kana or "") + (rec.given_kana or "")):
                flags |= Present.KANA_FULL
        if rec.kana_split_inferred:
            flags |= Present.KANA_SPLIT_INFERRED
        y, m, d = rec.birth_year, rec.birth_month, rec.birth_day
        if y is not None and self._add(pos, "demographic", "birth_year", f"{y:04d}"):
            flags |= Present.BIRTH_YEAR
        if m is not None and self._add(pos, "demographic", "birth_month", f"{m:02d}"):
            flags |= Present.BIRTH_MONTH
        if d is not None and self._add(pos, "demographic", "birth_day", f"{d:02d}"):
            flags |= Present.BIRTH_DAY
        if self._add(pos, "demographic", "sex", rec.sex):
            flags |= Present.SEX
        if self._add(pos, "address", "postal_code", rec.postal_code):
            flags |= Present.POSTAL_CODE
        if self._add(pos, "address", "address", rec.address):
            flags |= Present.ADDRESS
        blocks = [self._block(name, v) if (v := _block_value(name, y, m, d)) else 0 for name in self.schema.blocking_keys]
        return pos, flags, blocks

    def encode(self, records: Sequence[NormalisedRecord]) -> Encodings:
        """Encode a batch; row i of the result is ``records[i]``."""
        n = len(records)
        nbits = self.schema.total_bits
        rows: list[int] = []
        cols: list[int] = []
        present = np.zeros(n, dtype=np.uint16)
        blocks = np.zeros((n, len(self.schema.blocking_keys)), dtype=np.uint64)
        for i, rec in enumerate(records):
            pos, flags, blk = self.record_positions(rec)
            cols.extend(pos)
            rows.extend([i] * len(pos))
            present[i] = flags
            blocks[i] = blk
        dense = np.zeros((n, nbits), dtype=np.uint8)
        if cols:
            dense[np.asarray(rows, dtype=np.intp), np.asarray(cols, dtype=np.intp)] = 1
        bits = np.packbits(dense, axis=1, bitorder="big")
        return Encodings(self.schema.version, self.key_id, bits, present, blocks)


def _block_value(name: str, y: int | None, m: int | None, d: int | None) -> str | None:
    """Blocking keys come from birth-date parts only (see README, privacy costs)."""
    if name == "YM":
        return f"{y}-{m}" if y is not None and m is not None else None
    if name == "MD":
        return f"{m}-{d}" if m is not None and d is not None else None
    if name == "YD":
        return f"{y}-{d}" if y is not None and d is not None else None
    if name == "Y+MD":  # catches day/month transposition
        return f"{y}:{min(m, d)}-{max(m, d)}" if None not in (y, m, d) else None
    raise ValueError(f"unknown blocking key {name}")


@dataclass(slots=True)
class RowError:
    """A row that could not be encoded: its position in the input and why."""

    index: int
    field: str
    reason: str


_WORKER: dict = {}


def _worker_init(secret: bytes, key_id: str, version: str) -> None:
    _WORKER["encoder"] = Encoder(secret, key_id, load_schema(version))


def _normalise_chunk(records: Sequence[CanonicalRecord], start: int) -> tuple[list[NormalisedRecord], list[int], list[RowError]]:
    from linkage.normalise import normalise_record

    good: list[NormalisedRecord] = []
    good_index: list[int] = []
    errors: list[RowError] = []
    for offset, rec in enumerate(records):
        try:
            good.append(normalise_record(rec))
            good_index.append(start + offset)
        except FieldError as exc:
            errors.append(RowError(start + offset, exc.field, exc.reason))
    return good, good_index, errors


def _encode_chunk(records: Sequence[CanonicalRecord], start: int) -> tuple[Encodings, list[int], list[RowError]]:
    good, good_index, errors = _normalise_chunk(records, start)
    return _WORKER["encoder"].encode(good), good_index, errors


def encode_records(
    records: Sequence[CanonicalRecord],
    secret: bytes,
    key_id: str,
    *,
    workers: int | None = None,
    chunk_size: int = 4096,
    progress: Callable[[int], None] | None = None,
    version: str = CURRENT_VERSION,
) -> tuple[Encodings, np.ndarray, list[RowError]]:
    """Normalise and encode canonical records, in parallel for large batches.

    Returns the encodings of the rows that could be encoded, their input
    indices (so nothing is lost silently) and one :class:`RowError` per row
    that could not. ``progress`` is called with the number of rows done.
    """
    workers = workers or min(2, os.cpu_count() or 1)
    chunks = [(records[i : i + chunk_size], i) for i in range(0, len(records), chunk_size)]
    results: Iterable[tuple[Encodings, list[int], list[RowError]]]
    if workers <= 1 or len(chunks) <= 1:
        _worker_init(secret, key_id, version)
        results = (_encode_chunk(c, s) for c, s in chunks)
        pool = None
    else:
        import multiprocessing

        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_worker_init,
            initargs=(secret, key_id, version),
        )
        results = pool.map(_encode_chunk, [c for c, _ in chunks], [s for _, s in chunks])
    parts: list[Encodings] = []
    index: list[int] = []
    errors: list[RowError] = []
    try:
        for (enc, idx, errs), (chunk, _) in zip(results, chunks):
            parts.append(enc)
            index.extend(idx)
            errors.extend(errs)
            if progress:
                progress(len(chunk))
    finally:
        if pool is not None:
            pool.shutdown()
    if not parts:
        empty = Encoder(secret, key_id, load_schema(version)).encode([])
        return empty, np.zeros(0, dtype=np.int64), errors
    return Encodings.concatenate(parts), np.asarray(index, dtype=np.int64), errors
