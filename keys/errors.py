"""Errors of the key library; every message is Japanese and safe to show to staff.

A message never contains secret material: no passphrase, key, share or
plaintext identity, only file names, key ids, indices and what to do.
"""

from __future__ import annotations


class KeysError(Exception):
    """Base class of every error the key library reports to a user."""


class KeyFileError(KeysError):
    """A key, share or registry file is missing, truncated, edited or of another kind."""


class WrongPassphraseError(KeysError):
    """The passphrase does not open the file (or the file was forged)."""


class ShareError(KeysError):
    """Custodian shares cannot be combined: missing, duplicate, foreign or corrupted."""


class ShareNotYoursError(ShareError):
    """A custodian offered a share that names another custodian."""


class KeyIdMismatchError(KeysError):
    """Two things under different key ids were about to be used together."""


class UnknownKeyIdError(KeysError):
    """A key id names no key this home holds."""


class AgentError(KeysError):
    """An agent is unknown, revoked, or its public key file does not hold together."""


class SealError(KeysError):
    """A sealed identity cannot be opened: moved, edited, or for another key."""


class AuditEntryError(KeysError):
    """An audit entry does not follow the audit schema."""


class AuditStoreError(KeysError):
    """The audit database does not hold together (e.g. a missing tree node)."""
