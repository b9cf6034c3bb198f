"""The drop folder: submission files carried across networks (可搬媒体, 中継サーバ) are imported from a folder.

Each regular file in the folder is ingested; it then moves to ``imported/``,
or to ``refused/`` next to a ``<name>.reason.txt`` saying why. A file still
being written (changed in the last seconds) is left for the next poll.

A submission file holds every record's sealed identity, so the folders the
gateway keeps are its own only (0700, files 0600), and an imported file is
removed ``drop_imported_retention_days`` after its import (default 7 days;
the records are in the gateway's database by then, and the agent keeps its
receipt). ``docs/security-reidentification.md`` explains why.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from gateway.core import Gateway
from gateway.errors import GatewayError
from gateway.ingest import IngestResult, ingest

log = logging.getLogger("tsunagu.gateway.drop")

#: A file must have been left alone this long before it is read.
SETTLE_SECONDS = 2.0


def process_folder(gw: Gateway, folder: Path, settle: float = SETTLE_SECONDS) -> list[tuple[str, IngestResult | GatewayError]]:
    """Import every settled file in ``folder``; returns (file name, answer or refusal) per file."""
    imported, refused = folder / "imported", folder / "refused"
    for kept in (imported, refused):
        kept.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(kept, 0o700)
    outcomes: list[tuple[str, IngestResult | GatewayError]] = []
    now = time.time()
    purge_imported(imported, gw.settings.drop_imported_retention_days, now)
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        if now - path.stat().st_mtime < settle:
            continue
        size = path.stat().st_size
        try:
            if size > gw.settings.max_submission_bytes:
                error = GatewayError(413, "too_large", f"提出データが大きすぎます（{size} バイト、上限 {gw.settings.max_submission_bytes} バイト）。")
                gw.event("drop", error.status, error.code, error.detail, path=path.name)
                raise error
            result = ingest(gw, path.read_bytes(), "drop", path=path.name)
        except GatewayError as exc:
            _move(path, refused)
            (refused / f"{path.name}.reason.txt").write_text(f"{exc.code}\n{exc.detail}\n", encoding="utf-8")
            outcomes.append((path.name, exc))
            continue
        _move(path, imported)
        outcomes.append((path.name, result))
    return outcomes


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


def _move(path: Path, folder: Path) -> None:
    target = folder / path.name
    if target.exists():
        target = folder / f"{path.stem}-{time.strftime('%Y%m%dT%H%M%S')}{path.suffix}"
    shutil.move(str(path), target)
    os.chmod(target, 0o600)
    os.utime(target)  # the retention counts from the import, not from when the file was written
