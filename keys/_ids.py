"""Key ids: short fingerprints of public (or secret) material, so a file's id can be checked."""

from __future__ import annotations

import hashlib

from keys import labels


def fingerprint(prefix: str, material: bytes) -> str:
    """``prefix`` + the first 16 hex digits of SHA-256 over a domain-separated ``material``."""
    digest = hashlib.sha256(labels.KEY_ID + prefix.encode("ascii") + b"\x00" + material).hexdigest()
    return f"{prefix}_{digest[:16]}"
