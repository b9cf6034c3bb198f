"""Key ids: short fingerprints of public (or secret) material, so a file's id can be checked."""

from __future__ import annotations

import hashlib


def fingerprint(prefix: str, material: bytes) -> str:
    """``prefix`` + the first 16 hex digits of SHA-256 over a domain-separated ``material``."""
    digest = hashlib.sha256(b"tsunagu/key-id/v1\x00" + prefix.encode("ascii") + b"\x00" + material).hexdigest()
    return f"{prefix}_{digest[:16]}"
