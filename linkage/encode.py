"""Encode normalised records into diffused record-level encodings and coarse blocking keys.

First the record's Bloom filter: each segment of the schema is a clkhash v3
linkage schema and is hashed exactly as clkhash does it (per-feature keys from
clkhash's HKDF key lists, ``blake_hash_token``: keyed BLAKE2b, ``bitsPerToken``
strategy). The encoder adds three things around clkhash: n-grams containing an
unknown character are dropped before hashing (an unknown character neither
agrees nor disagrees), a token cache (names repeat, so most tokens are hashed
once per run), and numpy assembly of whole batches.
``tests/unit/linkage/test_encode.py`` checks bit for bit that every segment equals
clkhash's own ``generate_clks`` output.

Then, under a diffused schema (``tsunagu-jp/2``), that filter never leaves the
encoder: each *view* is a keyed diffusion layer over it (Armknecht et al.
2023, "ELD"): output bit j is the XOR of ``taps`` filter bits chosen at random
under a key derived from the linkage secret, among the segments the view keeps.
XOR of a few bits keeps Hamming distances estimable for close records, while no
output bit belongs to one q-gram and the output popcount says nothing about
the input, which is what pattern-mining and frequency attacks read.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import IntFlag
from functools import lru_cache
from typing import Callable, Iterable, Protocol, Sequence

import numpy as np
from clkhash.bloomfilter import blake_hash_token
from clkhash.key_derivation import generate_key_lists
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from keys import labels

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


_NAME_FAMILY, _NAME_GIVEN, _NAME_FULL = int(Present.NAME_FAMILY), int(Present.NAME_GIVEN), int(Present.NAME_FULL)
_KANA_FAMILY, _KANA_GIVEN, _KANA_FULL = int(Present.KANA_FAMILY), int(Present.KANA_GIVEN), int(Present.KANA_FULL)
_NAME_SPLIT_INFERRED, _KANA_SPLIT_INFERRED = int(Present.NAME_SPLIT_INFERRED), int(Present.KANA_SPLIT_INFERRED)
_POSTAL_CODE, _ADDRESS = int(Present.POSTAL_CODE), int(Present.ADDRESS)


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
    schema_override: EncodingSchema | None = None

    @property
    def schema(self) -> EncodingSchema:
        """The schema these rows were encoded under (shipped schemas are found by version)."""
        return self.schema_override or load_schema(self.schema_version)

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
            first.schema_override,
        )

    def take(self, index: np.ndarray) -> "Encodings":
        """The rows at ``index``."""
        return Encodings(
            self.schema_version, self.key_id, self.bits[index], self.present[index], self.blocks[index], self.schema_override
        )


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
    slot: int  # position in the encoder's caches


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
            seg_secret = derive_key(secret, labels.LINKAGE_SEGMENT + seg.key_group, self.schema.version)
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
                    seg.name,
                    field.identifier,
                    bytes(field_keys[0]),
                    props.strategy.bits_per_token(1)[0],
                    clk.l,
                    seg.offset,
                    n,
                    len(self._features),
                )
        self._block_key = derive_key(secret, labels.LINKAGE_BLOCKING, self.schema.version)
        self._total_bits = self.schema.filter_bits
        self._taps = [_view_taps(secret, self.schema, v) for v in self.schema.views]
        self._negations = [_view_negations(secret, self.schema, v) for v in self.schema.views]
        # Field values repeat (names, dates, districts): each value's bit mask
        # is computed once per run. Bit p of the encoding is int bit (total-1-p).
        self._masks: list[dict[str, int]] = [{} for _ in self._features]
        self._token_masks: list[dict[str, int]] = [{} for _ in self._features]
        self._name_fields = tuple(
            self._features[key]
            for key in (
                ("name_family", "name_part"),
                ("name_given", "name_part"),
                ("name_full", "name_full"),
                ("kana_family", "kana_part"),
                ("kana_given", "kana_part"),
                ("kana_full", "kana_full"),
                ("address", "postal_code"),
                ("address", "address"),
            )
        )
        self._block_cache: dict[tuple[str, str], int] = {}
        # A diffused schema hides segment sizes, so an abbreviated address cannot be
        # compared by containment: such a schema hashes the address's core instead.
        self._address_core = self.schema.document.get("addressForm") == "core"
        self._dates: dict[tuple, tuple[int, int, list[int]]] = {}

    def cached_values(self) -> int:
        """How many values and tokens the caches hold (a caller that streams a large file bounds its memory by it)."""
        return (sum(len(c) for c in self._masks) + sum(len(c) for c in self._token_masks) + len(self._dates)
                + len(self._block_cache))

    def _mask(self, segment: str, identifier: str, value: str) -> int:
        return self._value_mask(self._features[(segment, identifier)], value)

    def _value_mask(self, feature: _Feature, value: str) -> int:
        cache = self._masks[feature.slot]
        mask = cache.get(value)
        if mask is None:
            tokens = _bigrams(value, feature.ngram) if feature.ngram else [value]
            token_cache = self._token_masks[feature.slot]
            mask = 0
            for token in tokens:
                t = token_cache.get(token)
                if t is None:
                    top = self._total_bits - 1 - feature.offset
                    t = 0
                    for i in blake_hash_token(token.encode("utf-8"), feature.k, feature.key, feature.length):
                        t |= 1 << (top - i)
                    token_cache[token] = t
                mask |= t
            cache[value] = mask
        return mask

    def _date_parts(self, rec: NormalisedRecord) -> tuple[int, int, list[int]]:
        key = (rec.birth_year, rec.birth_month, rec.birth_day, rec.sex)
        cached = self._dates.get(key)
        if cached is None:
            y, m, d, sex = key
            mask = flags = 0
            for identifier, value, flag in (
                ("birth_year", None if y is None else f"{y:04d}", int(Present.BIRTH_YEAR)),
                ("birth_month", None if m is None else f"{m:02d}", int(Present.BIRTH_MONTH)),
                ("birth_day", None if d is None else f"{d:02d}", int(Present.BIRTH_DAY)),
                ("sex", sex, int(Present.SEX)),
            ):
                if value:
                    mask |= self._mask("demographic", identifier, value)
                    flags |= flag
            blocks = [self._block(name, v) if (v := _block_value(name, y, m, d)) else 0 for name in self.schema.blocking_keys]
            cached = self._dates[key] = (mask, flags, blocks)
        return cached

    def _block(self, name: str, value: str) -> int:
        token = self._block_cache.get((name, value))
        if token is None:
            digest = hashlib.blake2b(f"{name}|{value}".encode(), key=self._block_key, digest_size=8).digest()
            token = int.from_bytes(digest, "big") or 1
            self._block_cache[(name, value)] = token
        return token

    def record_mask(self, rec: NormalisedRecord) -> tuple[int, int, list[int]]:
        """The encoding of one record as an int (bit p = int bit total-1-p), its presence flags and blocking tokens."""
        mask, flags, blocks = self._date_parts(rec)
        address = address_core(rec.address) if self._address_core and rec.address else rec.address
        value_mask = self._value_mask
        f = self._name_fields
        # Plain ints for the flags: this loop runs for every record.
        for feature, value, flag in (
            (f[0], rec.family_name, _NAME_FAMILY),
            (f[1], rec.given_name, _NAME_GIVEN),
            (f[2], _full_name(rec), _NAME_FULL),
            (f[3], rec.family_kana, _KANA_FAMILY),
            (f[4], rec.given_kana, _KANA_GIVEN),
            (f[5], (rec.family_kana or "") + (rec.given_kana or ""), _KANA_FULL),
            (f[6], rec.postal_code, _POSTAL_CODE),
            (f[7], address, _ADDRESS),
        ):
            if value:
                m = value_mask(feature, value)
                if m:
                    mask |= m
                    flags |= flag
        if rec.name_split_inferred:
            flags |= _NAME_SPLIT_INFERRED
        if rec.kana_split_inferred:
            flags |= _KANA_SPLIT_INFERRED
        return mask, flags, blocks

    def record_filters(self, records: Sequence[NormalisedRecord]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The records' Bloom filters (packed, the segments concatenated), presence flags and blocking tokens.

        Under a diffused schema these filters never leave the agent: :meth:`encode` sends their views.
        """
        n = len(records)
        nbytes = self.schema.filter_bits // 8
        rows = []
        present = np.zeros(n, dtype=np.uint16)
        blocks = np.zeros((n, len(self.schema.blocking_keys)), dtype=np.uint64)
        for i, rec in enumerate(records):
            mask, flags, blk = self.record_mask(rec)
            rows.append(mask.to_bytes(nbytes, "big"))
            present[i] = flags
            blocks[i] = blk
        return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(n, nbytes), present, blocks

    def encode(self, records: Sequence[NormalisedRecord]) -> Encodings:
        """Encode a batch; row i of the result is ``records[i]``."""
        filters, present, blocks = self.record_filters(records)
        bits = self.diffuse(filters) if self.schema.diffused else filters.copy()
        return Encodings(self.schema.version, self.key_id, bits, present, blocks, self.schema)

    def diffuse(self, filters: np.ndarray) -> np.ndarray:
        """The schema's views of packed record filters (n × filter bytes → n × encoding bytes)."""
        unpacked = np.unpackbits(filters, axis=1)
        if self.schema.balanced:
            # Balanced filter (Berger & Schnell): the filter and its complement, so
            # every input bit is set for about half the records and no tap's
            # presence biases an output bit.
            unpacked = np.concatenate([unpacked, unpacked ^ 1], axis=1)
        views = []
        for taps, negations in zip(self._taps, self._negations):
            # XOR of the linear taps: all of them, or all but the last two under a quadratic
            # layer, which adds (b ⊕ β)(c ⊕ γ) ⊕ δ: a product term of every output's own, so the
            # views' column spaces are not spans of filter columns (no GF(2) inversion).
            linear = taps.shape[1] - 2 if negations is not None else taps.shape[1]
            out = np.zeros((len(unpacked), len(taps)), dtype=np.uint8)
            for t in range(linear):
                out ^= unpacked[:, taps[:, t]]
            if negations is not None:
                out ^= (unpacked[:, taps[:, -2]] ^ negations[0]) & (unpacked[:, taps[:, -1]] ^ negations[1])
                out ^= negations[2]
            views.append(np.packbits(out, axis=1))
        return np.concatenate(views, axis=1) if views else np.zeros((len(filters), 0), np.uint8)


def _view_taps(secret: bytes, schema: EncodingSchema, view) -> np.ndarray:
    """The filter positions XORed into each output bit of ``view``: ``length × taps``, distinct per row.

    Drawn from SHAKE-256 keyed with a per-view HKDF key, so the layer is secret,
    the same for every agent of one linkage key, and different for every view
    (no two views can be XORed to cancel the fields they share).
    """
    kept = [np.arange(s.offset, s.offset + s.length) for s in schema.segments if s.name not in view.omit]
    if schema.balanced:  # the complement of a segment sits filter_bits further on
        kept += [k + schema.filter_bits for k in kept]
    keep = np.concatenate(kept)
    key = derive_key(secret, labels.LINKAGE_DIFFUSION + view.name, schema.version)
    taps = np.empty((view.length, schema.taps), dtype=np.int64)
    stream = np.frombuffer(hashlib.shake_256(key).digest(8 * view.length * schema.taps * 2), dtype="<u8")
    pos = 0
    half = schema.filter_bits if schema.balanced else -(1 << 30)
    for j in range(view.length):
        chosen: list[int] = []
        while len(chosen) < schema.taps:
            c = int(keep[int(stream[pos] % len(keep))])
            pos += 1
            # A repeated tap would cancel itself; a bit with its own complement would
            # leave the output a copy of the remaining taps.
            if c not in chosen and c + half not in chosen and c - half not in chosen:
                chosen.append(c)
        taps[j] = chosen
    return taps


def _view_negations(secret: bytes, schema: EncodingSchema, view) -> np.ndarray | None:
    """A quadratic view's complements ``β``, ``γ``, ``δ`` per output bit (3 × length, 0/1), or None for XOR.

    Drawn from SHAKE-256 under a key of their own, so that, averaged over the
    outputs, the product term is 1 for half of them whatever the inputs' density.
    """
    if schema.function != "quadratic":
        return None
    key = derive_key(secret, labels.LINKAGE_DIFFUSION_NEGATION + view.name, schema.version)
    raw = np.frombuffer(hashlib.shake_256(key).digest(3 * view.length), dtype=np.uint8)
    return (raw.reshape(3, view.length) & 1).astype(np.uint8)


#: Prefecture, then city, ward or county + town/village, at the head of an address (each optional).
_PREFECTURE = re.compile("^(?:東京都|北海道|(?:京都|大阪)府|[^0-9]{2,3}?県)")
_MUNICIPALITY = re.compile("^(?:[^0-9市]{1,6}市)?(?:[^0-9区]{1,4}区)?(?:[^0-9郡]{1,4}郡[^0-9町村]{1,4}[町村])?")
#: The district and its block numbers: up to the first hyphenated chain (東町2-18-3), else
#: up to the last number (沢辺670, 北1条西2): what follows is a building.
_CHAIN = re.compile("^(?:大字|字)?(.*?[0-9]+(?:-[0-9]+)+)")
_LAST_NUMBER = re.compile("^(?:大字|字)?(.*[0-9])")


@lru_cache(maxsize=65536)
def address_core(address: str) -> str:
    """The district and block numbers of a normalised address: no prefecture, municipality or building.

    Departments write one address with or without the prefecture and city and
    with or without the building (茨城県つなぐ市東町2-18-3メゾンさくら108号室,
    東町2-18-3); the core is what they share. An address with no number keeps
    its whole text after the municipality.
    """
    rest = _MUNICIPALITY.sub("", _PREFECTURE.sub("", address), count=1)
    match = _CHAIN.match(rest) or _LAST_NUMBER.match(rest)
    if match:
        return match.group(1)
    return rest.removeprefix("大字") or address


def _full_name(rec: NormalisedRecord) -> str | None:
    family, given = rec.family_name, rec.given_name
    if not (family or given):
        return None
    if rec.name_script == "latin":
        # Alphabet names come in either order: compare their words sorted.
        return "".join(sorted(f"{family or ''} {given or ''}".split()))
    return (family or "") + (given or "")


def _block_value(name: str, y: int | None, m: int | None, d: int | None) -> str | None:
    """Blocking keys come from birth-date parts only (docs/privacy.md: why /2 keeps only the year)."""
    if name == "Y":  # tsunagu-jp/2: each class holds a whole year of birth dates
        return f"{y}" if y is not None else None
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


def encode_chunk(encoder: "Encoder", records: Sequence[CanonicalRecord], start: int) -> tuple[Encodings, list[int], list[RowError]]:
    """Normalise and encode one chunk whose first row is row ``start`` of its source: encodings, their rows, row errors."""
    good, good_index, errors = _normalise_chunk(records, start)
    return encoder.encode(good), good_index, errors


#: A chunk of the sources: (source, first row, row after the last).
Chunk = tuple[int, int, int]


class ChunkRunner(Protocol):
    """Runs :func:`encode_chunk` over chunks of the sources (the shells' process pools, ``service.pools``)."""

    def encode_chunks(self, encoder: "Encoder", sources: Sequence[Sequence[CanonicalRecord]],
                      chunks: list[Chunk]) -> Iterable[tuple[Encodings, list[int], list[RowError]]]:
        """:func:`encode_chunk` of every chunk (``sources[src][start:stop]``, ``start``), in the order of ``chunks``."""
        ...


def encode_records(
    records: Sequence[CanonicalRecord],
    secret: bytes,
    key_id: str,
    *,
    runner: ChunkRunner | None = None,
    chunk_size: int = 4096,
    progress: Callable[[int], None] | None = None,
    version: str | None = None,
) -> tuple[Encodings, np.ndarray, list[RowError]]:
    """Normalise and encode canonical records, chunk by chunk.

    Returns the encodings of the rows that could be encoded, their input
    indices (so nothing is lost silently) and one :class:`RowError` per row
    that could not. ``progress`` is called with the number of rows done.
    Chunks run in this process unless a ``runner`` (a shell's process pool,
    ``service.pools.ForkPool``) runs them.
    """
    return encode_sources([records], secret, key_id, runner=runner, chunk_size=chunk_size, progress=progress, version=version)[0]


def encode_sources(
    sources: Sequence[Sequence[CanonicalRecord]],
    secret: bytes,
    key_id: str,
    *,
    runner: ChunkRunner | None = None,
    chunk_size: int = 4096,
    progress: Callable[[int], None] | None = None,
    version: str | None = None,
    schema: EncodingSchema | None = None,
) -> list[tuple[Encodings, np.ndarray, list[RowError]]]:
    """:func:`encode_records` for several sources at once (one ``runner`` for all their chunks).

    ``schema`` overrides ``version`` with a schema object (benchmarks compare variants).
    """
    schema = schema or load_schema(version)
    encoder = Encoder(secret, key_id, schema)
    chunks = [
        (src, i, min(i + chunk_size, len(recs))) for src, recs in enumerate(sources) for i in range(0, len(recs), chunk_size)
    ]
    results: Iterable[tuple[Encodings, list[int], list[RowError]]]
    if runner is None:
        results = (encode_chunk(encoder, sources[src][start:stop], start) for src, start, stop in chunks)
    else:
        results = runner.encode_chunks(encoder, sources, chunks)
    parts: list[list[Encodings]] = [[] for _ in sources]
    index: list[list[int]] = [[] for _ in sources]
    errors: list[list[RowError]] = [[] for _ in sources]
    for (enc, idx, errs), (src, start, stop) in zip(results, chunks):
        parts[src].append(enc)
        index[src].extend(idx)
        errors[src].extend(errs)
        if progress:
            progress(stop - start)
    out = []
    for src in range(len(sources)):
        if parts[src]:
            enc = Encodings.concatenate(parts[src])
        else:
            enc = encoder.encode([])
        out.append((enc, np.asarray(index[src], dtype=np.int64), errors[src]))
    return out
