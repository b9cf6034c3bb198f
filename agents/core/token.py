"""Token: the record token, a keyed hash of a department's record id that stands for the record outside the segment.

``token = HMAC-SHA256(K_source, record_id)`` truncated to 128 bits (hex), with
``K_source = HKDF-SHA256(linkage secret, info = "tsunagu/record-token/v1|<source>")``.
The same record id of the same source gives the same token in every run (so a
snapshot replaces the record it replaced last time); without the linkage
secret a token cannot be computed from, or turned back into, a record id
(宛名番号 and 学籍番号 are short and guessable, so an unkeyed hash would be
reversible by trying them all). One key per source keeps equal ids in two
systems from producing equal tokens.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from keys import labels

_INFO = labels.RECORD_TOKEN
_BYTES = 16


class RecordTokeniser:
    """Computes record tokens of one source under one linkage secret."""

    def __init__(self, secret: bytes, source: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=(_INFO + source).encode("utf-8")).derive(secret)
        self._mac = hmac.new(key, digestmod=hashlib.sha256)

    def token(self, record_id: str) -> str:
        """The token of ``record_id`` (32 hex digits)."""
        mac = self._mac.copy()
        mac.update(record_id.encode("utf-8"))
        return mac.digest()[:_BYTES].hex()
