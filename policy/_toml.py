"""Reading the policy package's TOML documents (the attribute catalog, screening rules) with one wording for what is wrong."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError


def read_toml(path: Path, error: type[Exception], what: str) -> dict[str, Any]:
    """The TOML document in the file ``path``; ``error`` naming the document (``what``) if it is missing or not TOML."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{what} {path} が見つかりません") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: TOML として読めません（{exc}）") from None


def first_problem(origin: str, exc: ValidationError) -> str:
    """The first thing pydantic found wrong, as staff read it: ``<origin>: 「<where>」が不正です（<why>）``."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{origin}: 「{where}」が不正です（{first['msg']}）"
