"""The drop folder: submission files carried across networks (可搬媒体, 中継サーバ) are imported from a folder.

Each regular file in the folder is ingested; it then moves to ``imported/``,
or to ``refused/`` next to a ``<name>.reason.txt`` saying why. A file still
being written (changed in the last seconds) is left for the next poll.
"""

from __future__ import annotations

import logging
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
    imported.mkdir(parents=True, exist_ok=True)
    refused.mkdir(parents=True, exist_ok=True)
    outcomes: list[tuple[str, IngestResult | GatewayError]] = []
    now = time.time()
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


def _move(path: Path, folder: Path) -> None:
    target = folder / path.name
    if target.exists():
        target = folder / f"{path.stem}-{time.strftime('%Y%m%dT%H%M%S')}{path.suffix}"
    shutil.move(str(path), target)
