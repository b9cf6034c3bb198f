"""Versioned JSON documents on disk: canonical bytes, checksums, atomic writes."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from keys.errors import KeyFileError

_CHECKSUM = "checksum"


def canonical_json(value: Any) -> bytes:
    """Deterministic UTF-8 JSON (sorted keys, no spaces): the bytes that get hashed and bound."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def b64e(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64d(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, AttributeError, UnicodeEncodeError) as exc:
        raise KeyFileError(f"{what} が base64 として読めません。ファイルが編集されたか壊れています。") from exc


def _checksum(body: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never half.

    The temporary file is created in the same directory (``os.replace`` is only
    atomic within one file system) and fsynced before the rename.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # POSIX; on Windows the file inherits the folder's ACL (os.fchmod does not exist there)
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_document(path: Path, kind: str, version: int, body: dict[str, Any], mode: int = 0o600) -> None:
    """Write a versioned JSON document of ``kind`` with a checksum over its canonical form."""
    doc = {"format": kind, "version": version, **body}
    doc[_CHECKSUM] = _checksum(doc)
    write_atomic(path, json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8") + b"\n", mode)


def parse_document(raw: bytes, kind: str, version: int, required: tuple[str, ...], name: str) -> dict[str, Any]:
    """Check and return a document read from ``name``; every failure names the file and the reason."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeyFileError(f"{name} を JSON として読めません。ファイルが途中で切れているか壊れています。") from exc
    if not isinstance(doc, dict):
        raise KeyFileError(f"{name} の形式が違います（JSON オブジェクトではありません）。")
    if doc.get("format") != kind:
        raise KeyFileError(f"{name} は {kind} のファイルではありません（形式: {doc.get('format')!r}）。")
    if doc.get("version") != version:
        raise KeyFileError(f"{name} の版 {doc.get('version')!r} には対応していません（対応: {version}）。")
    claimed = doc.pop(_CHECKSUM, None)
    if claimed != _checksum(doc):
        raise KeyFileError(f"{name} のチェックサムが合いません。ファイルが編集されたか壊れています。")
    missing = [field for field in required if field not in doc]
    if missing:
        raise KeyFileError(f"{name} に必要な項目がありません: {', '.join(missing)}")
    return doc


def read_document(path: Path, kind: str, version: int, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read and check a document written by :func:`write_document`."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise KeyFileError(f"ファイル {path} がありません。") from exc
    except IsADirectoryError as exc:
        raise KeyFileError(f"{path} はファイルではなくフォルダです。") from exc
    return parse_document(raw, kind, version, required, str(path))
