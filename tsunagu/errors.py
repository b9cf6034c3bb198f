"""Turning errors into messages for municipal staff (Japanese), never tracebacks."""

from __future__ import annotations

import sys

import typer

from linkage.errors import LinkageError


class CommandError(Exception):
    """An error a command reports to its user as it is (already in Japanese)."""


def report_and_exit(exc: BaseException) -> None:
    """Print a one-line reason for ``exc`` on stderr and exit non-zero."""
    if isinstance(exc, (LinkageError, CommandError)):
        typer.echo(f"エラー: {exc}", err=True)
        raise SystemExit(2)
    known = _known_library_errors()
    if isinstance(exc, known):
        typer.echo(f"エラー: {exc}", err=True)
        raise SystemExit(2)
    typer.echo(
        f"予期しないエラーが発生しました ({type(exc).__name__})。"
        "入力ファイルと設定を確認し、解決しない場合は管理者に連絡してください。",
        err=True,
    )
    raise SystemExit(3)


def _known_library_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [FileNotFoundError, PermissionError, IsADirectoryError]
    try:
        from keys.errors import KeysError  # type: ignore[import-not-found]

        errors.append(KeysError)
    except ImportError:
        pass
    return tuple(errors)


def fail(message: str) -> None:
    """Abort the current command with ``message`` (Japanese, for staff)."""
    raise CommandError(message)


__all__ = ["CommandError", "fail", "report_and_exit", "sys"]


def jst(value: str | None) -> str:
    """An ISO time (UTC, as the services answer) as staff read it: ``2026-12-02 09:15 JST``; blank as 「—」."""
    from datetime import datetime, timedelta, timezone

    if not value:
        return "—"
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone(timedelta(hours=9))).strftime("%Y-%m-%d %H:%M JST")
