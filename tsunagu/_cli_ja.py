"""Typer's own words in Japanese: help option, usage line, panel titles, required/default marks and common errors.

Typer (0.29) vendors its own Click (``typer._click``) with English strings written
into the code, not through gettext catalogues, so they are replaced here once,
when the CLI starts: the constants of ``typer.rich_utils``, the help option's text,
the usage prefix and the messages of the usage errors staff meet most (a missing
option, an unknown option, a bad value). Long Japanese descriptions fold onto the
next line instead of ending in "…" (Rich breaks lines only at spaces).
"""

from __future__ import annotations

from typing import Any

from typer import rich_utils
from typer._click import core as _core
from typer._click import exceptions as _exceptions
from typer._click import formatting as _formatting

HELP_TEXT = "このヘルプを表示して終了します。"
USAGE = "使い方: "


def _missing(self: Any) -> str:
    hint = self.param_hint if self.param_hint is not None else (self.param.get_error_hint() if self.param is not None else None)
    hint = _exceptions._join_param_hints(hint) if hint else ""
    kind = {"option": "オプション", "argument": "引数", "parameter": "指定"}.get(
        self.param_type or (self.param.param_type_name if self.param is not None else ""), "指定")
    return f"{kind} {hint} を指定してください。" + (f"（{self.message}）" if self.message else "")


def _bad(self: Any) -> str:
    hint = self.param_hint if self.param_hint is not None else (self.param.get_error_hint() if self.param is not None else None)
    if hint is None:
        return f"値が正しくありません: {self.message}"
    return f"{_exceptions._join_param_hints(hint)} の値が正しくありません: {self.message}"


def _no_such_option(self: Any) -> str:
    text = f"オプション {self.option_name} はありません。"
    return text + (f"（使えるもの: {', '.join(sorted(self.possibilities))}）" if self.possibilities else "")


def install() -> None:
    """Replace Typer's English with Japanese (idempotent)."""
    rich_utils.DEPRECATED_STRING = "（廃止予定）"
    rich_utils.DEFAULT_STRING = "[既定: {}]"
    rich_utils.ENVVAR_STRING = "[環境変数: {}]"
    rich_utils.REQUIRED_LONG_STRING = "[必須]"
    rich_utils.ARGUMENTS_PANEL_TITLE = "引数"
    rich_utils.OPTIONS_PANEL_TITLE = "オプション"
    rich_utils.COMMANDS_PANEL_TITLE = "コマンド"
    rich_utils.ERRORS_PANEL_TITLE = "エラー"
    rich_utils.ABORTED_TEXT = "中断しました。"
    rich_utils.RICH_HELP = "使い方は [blue]'{command_path} {help_option}'[/] で表示できます。"
    if not getattr(_core.Command, "_tsunagu_ja", False):
        _patch_help_option()
        _patch_usage()
        _patch_fold()
        _exceptions.MissingParameter.format_message = _missing
        _exceptions.BadParameter.format_message = _bad
        _exceptions.NoSuchOption.format_message = _no_such_option


def _patch_help_option() -> None:
    command = _core.Command
    original = command.get_help_option

    def get_help_option(self: Any, ctx: Any) -> Any:
        option = original(self, ctx)
        if option is not None:
            option.help = HELP_TEXT
        return option

    command.get_help_option = get_help_option
    command._tsunagu_ja = True


def _patch_usage() -> None:
    formatter = _formatting.HelpFormatter
    original = formatter.write_usage

    def write_usage(self: Any, prog: str, args: str = "", prefix: str | None = None) -> None:
        original(self, prog, args, USAGE if prefix is None else prefix)

    formatter.write_usage = write_usage
    rich_utils.highlighter.highlights.append(r"(?P<usage>使い方: )")


def _patch_fold() -> None:
    original = rich_utils._make_rich_text

    def make_rich_text(*args: Any, **kwargs: Any) -> Any:
        text = original(*args, **kwargs)
        if hasattr(text, "overflow"):
            text.overflow = "fold"
        return text

    rich_utils._make_rich_text = make_rich_text
