"""Encode: the normalised records as CLKs (``linkage.encode``) and record ids as record tokens (``agents.core.token``).

The Bloom-filter encoding is per record, so a file encoded chunk by chunk
encodes exactly as the whole file would. An encoder caches the n-gram bit
positions of values it has seen (names, dates and the bigrams of addresses
repeat); on a city's file the cache is started afresh past
:data:`CACHE_VALUES`, so a worker's memory stays bounded.
"""

from __future__ import annotations

from typing import Sequence

from agents.core.token import RecordTokeniser
from linkage.encode import Encoder, Encodings
from linkage.record import CanonicalRecord, NormalisedRecord

#: Most values and tokens an encoder caches before starting afresh (bounded memory on a city's file:
#: about 70 MB; names, dates and the bigrams of addresses repeat, so a cache this size still hits most of the time).
CACHE_VALUES = 200_000


class SourceEncoder:
    """Encodes one source's records under the linkage secret: CLKs and record tokens."""

    def __init__(self, secret: bytes, key_id: str, source: str) -> None:
        """An encoder for ``source`` under the linkage secret ``secret`` (its id ``key_id``)."""
        self._secret, self._key_id = secret, key_id
        self._encoder = Encoder(secret, key_id)
        self._tokeniser = RecordTokeniser(secret, source)

    def encode(self, records: Sequence[NormalisedRecord]) -> Encodings:
        """The CLKs, presence flags and blocking tokens of ``records``, in their order."""
        if self._encoder.cached_values() > CACHE_VALUES:
            self._encoder = Encoder(self._secret, self._key_id)
        return self._encoder.encode(list(records))

    def tokens(self, records: Sequence[CanonicalRecord]) -> list[str]:
        """The record token of each record (from its department record id)."""
        token = self._tokeniser.token
        return [token(r.record_id) for r in records]
