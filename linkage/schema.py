"""The versioned encoding schema: clkhash v3 segments, and (from ``tsunagu-jp/2``) diffused views.

An agent first builds a record's Bloom filter as the concatenation of several
segments, each described by a complete clkhash v3 linkage schema. Under
``tsunagu-jp/1`` (the default) that concatenation is the encoding itself:
one similarity per field, a missing field read as missing, and names a
curious gateway can decode (docs/privacy.md). Under ``tsunagu-jp/2`` the
segments never leave the agent: the encoding is a list of *views*, each a
keyed XOR diffusion (Armknecht et al. 2023, ELD) of the whole record's filter
with some segments left out; it resists the attacks of ``tsunagu bench
attack`` but links worse, so it is chosen by setting ``TSUNAGU_SCHEMA``
(docs/privacy.md has both sides measured). The schema document is data
(``linkage/schemas/*.json``), validated by clkhash's own JSON schema, and its
``version`` travels with every encoding.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import clkhash.schema

from linkage.errors import LinkageError

#: The schema new encodings use unless ``TSUNAGU_SCHEMA`` names another (:func:`current_version`).
CURRENT_VERSION = "tsunagu-jp/1"

#: The environment variable that chooses the schema of new encodings (every agent of a town and
#: ``tsunagu link`` must agree: encodings under different schemas cannot be compared).
SCHEMA_ENV = "TSUNAGU_SCHEMA"

#: Output functions of a diffusion layer (``diffusion.function`` in the schema document).
DIFFUSION_FUNCTIONS = ("xor", "quadratic")

_FILES = {"tsunagu-jp/1": "tsunagu-jp-v1.json", "tsunagu-jp/2": "tsunagu-jp-v2.json"}


class SchemaError(LinkageError):
    """An encoding schema is unknown or malformed."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One clkhash v3 schema inside the record encoding, at ``offset`` bits."""

    name: str
    key_group: str
    offset: int
    clk: clkhash.schema.Schema

    @property
    def length(self) -> int:
        """Bits in this segment's Bloom filter."""
        return self.clk.l

    @property
    def byte_slice(self) -> slice:
        """Where this segment sits in a packed encoding row."""
        return slice(self.offset // 8, (self.offset + self.length) // 8)


@dataclass(frozen=True, slots=True)
class View:
    """One diffused view of the record filter: the segments in ``omit`` are left out."""

    name: str
    omit: tuple[str, ...]
    offset: int
    length: int

    @property
    def byte_slice(self) -> slice:
        """Where this view sits in a packed encoding row."""
        return slice(self.offset // 8, (self.offset + self.length) // 8)


@dataclass(frozen=True, slots=True)
class EncodingSchema:
    """A loaded, validated schema: segments in order, diffused views (if any) and the blocking keys."""

    version: str
    segments: tuple[Segment, ...]
    blocking_keys: tuple[str, ...]
    document: dict
    views: tuple[View, ...] = ()
    taps: int = 0
    balanced: bool = False
    #: The diffusion layer's output function: ``"xor"`` of the taps, or ``"quadratic"``
    #: (``t1 ⊕ … ⊕ (b ⊕ β)(c ⊕ γ) ⊕ δ``, keyed complements), which is not linear over GF(2).
    function: str = "xor"

    @property
    def diffused(self) -> bool:
        """True when the encoding is a list of diffused views rather than the segments themselves."""
        return bool(self.views)

    @property
    def filter_bits(self) -> int:
        """Length of the record's Bloom filter (the concatenated segments) in bits."""
        return sum(s.length for s in self.segments)

    @property
    def total_bits(self) -> int:
        """Length of a whole record encoding, as sent and stored, in bits."""
        return sum(v.length for v in self.views) if self.views else self.filter_bits

    @property
    def total_bytes(self) -> int:
        """Length of a whole record encoding in bytes."""
        return self.total_bits // 8

    def view(self, name: str) -> View:
        """The view called ``name``."""
        for v in self.views:
            if v.name == name:
                return v
        raise SchemaError(f"スキーマ {self.version} にビュー「{name}」はありません")

    def segment(self, name: str) -> Segment:
        """The segment called ``name``."""
        for seg in self.segments:
            if seg.name == name:
                return seg
        raise SchemaError(f"スキーマ {self.version} にセグメント「{name}」はありません")


def current_version() -> str:
    """The schema version new encodings use: ``TSUNAGU_SCHEMA`` when set, else :data:`CURRENT_VERSION`."""
    return os.environ.get(SCHEMA_ENV, "").strip() or CURRENT_VERSION


def load_schema(version: str | None = None) -> EncodingSchema:
    """Load and validate the schema ``version`` shipped with the library (default: :func:`current_version`)."""
    return _load(version or current_version())


@lru_cache(maxsize=None)
def _load(version: str) -> EncodingSchema:
    try:
        filename = _FILES[version]
    except KeyError:
        known = ", ".join(sorted(_FILES))
        raise SchemaError(f"符号化スキーマ「{version}」は不明です（対応: {known}）") from None
    text = resources.files("linkage.schemas").joinpath(filename).read_text(encoding="utf-8")
    return parse_schema(json.loads(text))


def parse_schema(document: dict) -> EncodingSchema:
    """Validate a schema document (each segment through clkhash) and compute offsets."""
    try:
        version = document["version"]
        raw_segments = document["segments"]
        blocking = tuple(document["blocking"]["keys"])
    except (KeyError, TypeError) as exc:
        raise SchemaError(f"符号化スキーマに必須項目 {exc} がありません") from None
    segments = []
    offset = 0
    for raw in raw_segments:
        try:
            clk = clkhash.schema.from_json_dict(raw["clkhash"])
        except Exception as exc:  # clkhash raises several validation error types
            raise SchemaError(f"セグメント「{raw.get('name')}」が clkhash v3 スキーマとして不正です: {exc}") from None
        if clk.l % 64:
            raise SchemaError(f"セグメント「{raw['name']}」の長さ {clk.l} は 64 の倍数にしてください")
        segments.append(Segment(raw["name"], raw["keyGroup"], offset, clk))
        offset += clk.l
    views: list[View] = []
    taps, balanced, function = 0, False, "xor"
    if "views" in document:
        try:
            bits, taps = int(document["diffusion"]["bits"]), int(document["diffusion"]["taps"])
            balanced = bool(document["diffusion"].get("balanced", False))
            function = str(document["diffusion"].get("function", "xor"))
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"符号化スキーマの diffusion が不正です: {exc}") from None
        if bits % 64 or taps < 1:
            raise SchemaError(f"ビューの長さ {bits} は 64 の倍数、タップ数 {taps} は 1 以上にしてください")
        if function not in DIFFUSION_FUNCTIONS or (function == "quadratic" and taps < 3):
            raise SchemaError(f"diffusion の function「{function}」は xor か quadratic（タップ数 3 以上）にしてください")
        names = {s.name for s in segments}
        for i, raw in enumerate(document["views"]):
            omit = tuple(raw.get("omit", ()))
            if not set(omit) <= names or len(omit) == len(names):
                raise SchemaError(f"ビュー「{raw.get('name')}」の omit {list(omit)} が不正です")
            views.append(View(raw["name"], omit, i * bits, bits))
    return EncodingSchema(version, tuple(segments), blocking, document, tuple(views), taps, balanced, function)
