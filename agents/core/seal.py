"""Seal: each record's identity, as the department holds it, sealed to the escrow under its record token.

The sealed identity is the record's identity columns (name, kana, birth date,
sex, postal code, address and the department record id) with the values the
department wrote — not their normalised form — because it is what the escrow
gives back to a caseworker when a release is approved. ``keys.seal.BatchSealer``
does the cryptography: one X25519 exchange per batch, one AEAD per record,
padded to a size class.
"""

from __future__ import annotations

from typing import Mapping

from keys.seal import BatchSealer
from linkage.record import IDENTITY_COLUMNS, CanonicalRecord


def identity(record: CanonicalRecord, written: Mapping[str, str] | None = None) -> dict[str, str]:
    """The non-empty identity columns of ``record``, as the department wrote them.

    ``written``: the department's values of columns that ``record`` holds otherwise for linkage (an
    impossible birth date links on its usable parts, ``agents.core.validate``; the escrow keeps what was written).
    """
    if not written:
        return {c: v for c in IDENTITY_COLUMNS if (v := getattr(record, c))}
    return {c: v for c in IDENTITY_COLUMNS if (v := written.get(c) or getattr(record, c))}


def seal(sealer: BatchSealer, token: str, record: CanonicalRecord, written: Mapping[str, str] | None = None) -> bytes:
    """``record``'s identity (with ``written``, see :func:`identity`) sealed to the escrow under ``token``."""
    return sealer.seal(token, identity(record, written))
