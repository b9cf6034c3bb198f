"""The versioned encoding schema: an ordered list of clkhash v3 segments.

A tsunagu encoding is the concatenation of several Bloom filters ("segments"),
each described by a complete clkhash v3 linkage schema. Keeping the fields in
separate segments lets the gateway compute one similarity per field and treat
a missing field as missing rather than as disagreement. The schema document is
data (``linkage/schemas/*.json``), validated by clkhash's own JSON schema, and
its ``version`` travels with every encoding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import clkhash.schema

from linkage.errors import LinkageError

#: The schema every new encoding uses.
CURRENT_VERSION = "tsunagu-jp/1"

_FILES = {"tsunagu-jp/1": "tsunagu-jp-v1.json"}


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
class EncodingSchema:
    """A loaded, validated schema: segments in order and the blocking keys."""

    version: str
    segments: tuple[Segment, ...]
    blocking_keys: tuple[str, ...]
    document: dict

    @property
    def total_bits(self) -> int:
        """Length of a whole record encoding in bits."""
        return sum(s.length for s in self.segments)

    @property
    def total_bytes(self) -> int:
        """Length of a whole record encoding in bytes."""
        return self.total_bits // 8

    def segment(self, name: str) -> Segment:
        """The segment called ``name``."""
        for seg in self.segments:
            if seg.name == name:
                return seg
        raise SchemaError(f"スキーマ {self.version} にセグメント「{name}」はありません")


@lru_cache(maxsize=None)
def load_schema(version: str = CURRENT_VERSION) -> EncodingSchema:
    """Load and validate the schema ``version`` shipped with the library."""
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
    return EncodingSchema(version, tuple(segments), blocking, document)
