"""Entry point of the `tsunagu` command: one sub-command group per part of the pipeline."""

from __future__ import annotations

import importlib
import sys

import typer

from tsunagu import _cli_ja

_cli_ja.install()  # Typer's own help and error words in Japanese, before any command is built

app = typer.Typer(
    name="tsunagu",
    help="tsunagu — こどもデータ連携のためのプライバシー保護型名寄せゲートウェイ",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

@app.callback()
def _root() -> None:
    """tsunagu — こどもデータ連携のためのプライバシー保護型名寄せゲートウェイ"""


@app.command()
def version() -> None:
    """tsunagu のバージョンを表示します。"""
    from importlib.metadata import version as _v

    typer.echo(f"tsunagu {_v('tsunagu')}")


# Each module under tsunagu.commands registers its commands on `app`.
_COMMAND_MODULES = ("link", "bench", "keys", "audit", "agent", "gateway", "escrow", "federation", "casework", "evaluate")

for _name in _COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"tsunagu.commands.{_name}")
    except ModuleNotFoundError as exc:  # a command group not built yet
        if exc.name != f"tsunagu.commands.{_name}":
            raise
        continue
    _module.register(app)


def main() -> None:
    """Run the CLI; known errors become a one-line message, never a traceback."""
    from tsunagu.errors import report_and_exit

    try:
        app()
    except Exception as exc:  # noqa: BLE001 - the last line of defence for users
        report_and_exit(exc)


if __name__ == "__main__":
    sys.exit(main())
