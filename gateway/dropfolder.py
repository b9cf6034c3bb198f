"""The drop folder: submission files carried across networks (可搬媒体, 中継サーバ) are imported from a folder.

Each regular file in the folder is ingested; it then moves to ``imported/``,
or to ``rejected/`` next to a ``<name>.reason.txt`` saying why, and the loop
goes on with the next file whatever went wrong with this one. A symbolic link
(or anything else that is not a regular file) is never followed or read: it is
moved to ``rejected/`` as it is, with its reason. A file still being written
(changed in the last seconds) is left for the next poll.

A submission file holds every record's sealed identity, so the folders the
gateway keeps are its own only (0700, files 0600), and an imported file is
removed ``drop_imported_retention_days`` after its import (default 7 days;
the records are in the gateway's database by then, and the agent keeps its
receipt). ``docs/security-reidentification.md`` explains why.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

from gateway.core import Gateway
from gateway.errors import GatewayError, NotARegularFile, TooLarge, UnreadableFile
from gateway.frontdoor import check_signed_head
from gateway.ingest import IngestResult, ingest

log = logging.getLogger("tsunagu.gateway.drop")

#: A file must have been left alone this long before it is read.
SETTLE_SECONDS = 2.0
_SUBFOLDERS = ("imported", "rejected")


def process_folder(gw: Gateway, folder: Path, settle: float = SETTLE_SECONDS) -> list[tuple[str, IngestResult | GatewayError]]:
    """Import every settled file in ``folder``; returns (file name, answer or refusal) per file."""
    imported, rejected = folder / "imported", folder / "rejected"
    for kept in (imported, rejected):
        kept.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(kept, 0o700)
    outcomes: list[tuple[str, IngestResult | GatewayError]] = []
    now = time.time()
    purge_imported(imported, gw.settings.drop_imported_retention_days, now)
    for path in sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.name not in _SUBFOLDERS):
        info = path.lstat()  # the entry itself: a link is judged as a link, never through its target
        if stat.S_ISDIR(info.st_mode):
            continue
        if now - info.st_mtime < settle:
            continue
        try:
            result = _import(gw, path, info)
        except GatewayError as exc:
            _reject(path, rejected, exc)
            outcomes.append((path.name, exc))
            continue
        except Exception as exc:  # one bad file must not stop every later import
            log.exception("drop folder: %s could not be imported", path.name)
            error = UnreadableFile(f"ファイルを取り込めませんでした（{type(exc).__name__}）。提出データのファイルか確認してください。")
            gw.event("drop", error.status, error.code, error.detail, path=path.name[:256])
            _reject(path, rejected, error)
            outcomes.append((path.name, error))
            continue
        _move(path, imported)
        outcomes.append((path.name, result))
    return outcomes


def _import(gw: Gateway, path: Path, info: os.stat_result) -> IngestResult:
    if not stat.S_ISREG(info.st_mode):
        what = "シンボリックリンク" if stat.S_ISLNK(info.st_mode) else "通常のファイルではないもの"
        error = NotARegularFile(f"{what}は取り込みません（リンク先は読んでいません）。提出データのファイルそのものを置いてください。")
        gw.event("drop", error.status, error.code, error.detail, path=path.name[:256])
        raise error
    if info.st_size > gw.settings.max_submission_bytes:
        error = TooLarge(f"提出データが大きすぎます（{info.st_size} バイト、上限 {gw.settings.max_submission_bytes} バイト）。")
        gw.event("drop", error.status, error.code, error.detail, path=path.name[:256])
        raise error
    # O_NOFOLLOW: a file swapped for a link after the check above is still not followed (O_NONBLOCK: nor a FIFO waited on).
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(gw.settings.max_submission_bytes + 1)
    try:
        check_signed_head(gw, data)
    except GatewayError as exc:
        gw.event("drop", exc.status, exc.code, exc.detail, path=path.name[:256])
        raise
    return ingest(gw, data, "drop", path=path.name)


def _reject(path: Path, rejected: Path, error: GatewayError) -> None:
    target = _move(path, rejected)
    (rejected / f"{target.name}.reason.txt").write_text(f"{error.code}\n{error.detail}\n", encoding="utf-8")


def purge_imported(imported: Path, days: float, now: float | None = None) -> list[str]:
    """Remove files imported more than ``days`` ago (their modification time is the import time); returns their names."""
    cutoff = (time.time() if now is None else now) - days * 86400
    removed = []
    for path in sorted(imported.iterdir()) if imported.is_dir() else []:
        if path.is_file() and not path.is_symlink() and path.stat().st_mtime <= cutoff:
            path.unlink()
            removed.append(path.name)
    if removed:
        log.info("drop folder: %d imported file(s) older than %g days removed", len(removed), days)
    return removed


def _move(path: Path, folder: Path) -> Path:
    target = folder / path.name
    if target.exists() or target.is_symlink():
        target = folder / f"{path.stem}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}{path.suffix}"
    os.rename(path, target)  # renames the entry itself (a link stays a link; its target is untouched)
    if not target.is_symlink():
        os.chmod(target, 0o600)  # sealed identities: readable by the gateway's own account only
        os.utime(target)  # the retention counts from the import, not from when the file was written
    return target
