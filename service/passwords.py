"""Passwords (Argon2id) and session tokens, for both services.

Passwords use argon2-cffi's ``PasswordHasher`` with the RFC 9106 low-memory
profile (Argon2id, t=3, m=64 MiB, p=4): it writes the PHC string (algorithm,
parameters and salt travel with the hash, so parameters can be raised later
and old hashes re-hashed at login via ``check_needs_rehash``) and verifies in
constant time. ``cryptography``'s Argon2id is a bare KDF: the encoding,
parsing and parameter upgrade would be ours to write.

The escrow used to hash with ``cryptography``'s Argon2id and the same
parameters (m = 64 MiB, t = 3, p = 4, 16-byte salt, 32-byte hash); those PHC
strings are standard, so they verify here unchanged, and a hash with other
parameters is re-hashed at the next sign-in (:func:`needs_rehash`).

Session tokens are 256-bit random strings; the database keeps only their
SHA-256, so a copy of the database holds no usable token.
"""

from __future__ import annotations

import functools
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY

_hasher = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)


@functools.cache
def _dummy_hash() -> str:
    """Compared against when the user does not exist, so timing does not reveal user names.

    Made on the first check, not at import: every process that imports this module (each CLI command, each
    linkage run the server starts) would otherwise pay one Argon2id hash it never uses. The first check makes it
    whether or not the user exists, so even that one costs the same either way."""
    return _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """The Argon2id PHC string of ``password``."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if ``password`` matches; a missing user costs the same time as a wrong password."""
    dummy = _dummy_hash()
    try:
        return _hasher.verify(password_hash or dummy, password) and password_hash is not None
    except (VerificationError, InvalidHashError, UnicodeEncodeError):  # a lone surrogate can match no stored password
        return False


def needs_rehash(password_hash: str) -> bool:
    """True if the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(password_hash)


def new_token() -> str:
    """A fresh bearer token (shown to the client once)."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> bytes:
    """What the database stores for ``token``."""
    return hashlib.sha256(token.encode("utf-8")).digest()
