"""The escrow key in memory only: sealed after every start, unsealed when k custodians have each offered a share.

In the manner of Vault's unseal: each custodian, signed in as themselves, sends
the content of their own share file and its passphrase; the share is checked
on its own at once (it names the signed-in custodian, passphrase, escrow key,
share set, commitment), kept in memory, and when k
distinct shares are in, :func:`keys.custody.unseal` rebuilds the key. A
restart, or :meth:`Vault.seal`, forgets the key and every share offered.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from pathlib import Path, PosixPath

from keys import custody
from keys.custody import EscrowPrivateKey, ShareInput
from keys.errors import KeysError, ShareNotYoursError

from escrow.errors import (

    AlreadyUnsealed,

    CustodianAlreadyOffered,

    DuplicateShare,

    SEALED_DETAIL,

    Sealed,

    ShareNotYours,

    ShareRefused,

    UnsealFailed,

)


@dataclass(frozen=True)
class Progress:
    """What ``GET /api/v1/status`` shows (its answer model): sealed or not, and how many of the k shares are in."""

    sealed: bool
    progress: int
    threshold: int
    custodians: int
    escrow_key_id: str

    def to_json(self) -> dict[str, object]:
        """The progress as a JSON object."""
        return {f.name: getattr(self, f.name) for f in fields(Progress)}


@dataclass(frozen=True)
class Offered(Progress):
    """The progress after a share was accepted, with that share's index (for the audit entry; not part of the status)."""

    share_index: int = 0


class _ReceivedShare(PosixPath):
    """A share file received over HTTP: a path for keys.custody to name, whose bytes stay in memory (never on disk)."""

    _content: bytes

    def read_bytes(self) -> bytes:
        return self._content


def _received(content: bytes) -> _ReceivedShare:
    path = _ReceivedShare("送られた持分ファイル")
    path._content = content
    return path


class Vault:
    """The sealed escrow key file and, once unsealed, the escrow private key (process memory only)."""

    def __init__(self, sealed_path: Path) -> None:
        """Start sealed; the sealed key file is checked (format, checksum) now."""
        self._path = sealed_path
        info = custody.sealed_info(sealed_path)
        self._threshold: int = info["threshold"]
        self._custodians: int = info["custodians"]
        self.escrow_key_id: str = info["escrow_key_id"]
        self._lock = threading.Lock()
        self._offered: dict[int, tuple[str, ShareInput]] = {}  # share index → (escrow user, share)
        self._key: EscrowPrivateKey | None = None

    def status(self) -> Progress:
        """Sealed or not, and the shares offered so far."""
        return Progress(self._key is None, len(self._offered), self._threshold, self._custodians, self.escrow_key_id)

    def offer(self, username: str, content: bytes, passphrase: str) -> Offered:
        """Check one custodian's share and keep it; with the k-th share, unseal. Refusals are :class:`EscrowError`.

        ``username`` is the signed-in escrow user: the share must be theirs
        (:func:`keys.custody.check_share`), so the log's actor is who really unsealed.
        """
        with self._lock:
            if self._key is not None:
                raise AlreadyUnsealed("エスクローは既に開封されています。")
            if any(user == username for user, _ in self._offered.values()):
                raise CustodianAlreadyOffered(f"利用者「{username}」は既に持分を提出しました。開封には別の鍵管理者の持分が必要です。")
            share = ShareInput(_received(content), passphrase)
            try:
                # Each share is checked on its own at once (not when the k-th
                # custodian arrives), and only for the custodian it names.
                index = custody.check_share(share, self._path, username)
            except ShareNotYoursError as exc:
                raise ShareNotYours(str(exc)) from None
            except KeysError as exc:
                raise ShareRefused(str(exc)) from None
            if index in self._offered:
                raise DuplicateShare(f"持分 {index} 番は既に提出されています。開封には別の鍵管理者の持分が必要です。")
            self._offered[index] = (username, share)
            if len(self._offered) >= self._threshold:
                shares = [s for _, s in self._offered.values()]
                self._offered.clear()
                try:
                    self._key = custody.unseal(self._path, shares)
                except KeysError as exc:
                    raise UnsealFailed(f"{exc} 最初から開封をやり直してください。") from None
            return Offered(**self.status().to_json(), share_index=index)

    def seal(self) -> Progress:
        """Forget the key and every share offered so far."""
        with self._lock:
            self._key = None
            self._offered.clear()
            return self.status()

    def key(self) -> EscrowPrivateKey:
        """The unsealed escrow key; 503 while sealed."""
        key = self._key
        if key is None:
            raise Sealed(SEALED_DETAIL)
        return key
