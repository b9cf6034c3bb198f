"""The CLI speaks Japanese throughout: Typer's own help words, usage, marks and common errors; times in JST."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tsunagu.cli import app
from tsunagu.errors import jst

ENGLISH = ("Show this message and exit.", "Usage:", "[required]", "Options", "Commands", "Missing option", "No such option",
           "Try '", "Error", "[default:", "[env var:")


@pytest.mark.parametrize("args", [["--help"], ["agent", "run", "--help"], ["casework", "approve", "--help"], ["gateway", "--help"],
                                  ["escrow", "unseal", "--help"]])
def test_help_is_japanese(args: list[str]) -> None:
    result = CliRunner().invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "使い方: " in result.output and "このヘルプを表示して終了します。" in result.output
    assert not [word for word in ENGLISH if word in result.output]
    if args == ["--help"]:  # the commands' long Japanese descriptions fold instead of being cut with "…"
        assert "…" not in result.output and "封緘してゲートウェイへ提出します" in result.output.replace("│", "").replace(" ", "").replace("\n", "")


def test_errors_are_japanese() -> None:
    missing = CliRunner().invoke(app, ["casework", "approve"], env={"COLUMNS": "80"})
    assert missing.exit_code == 2 and "'--escrow' を指定してください。" in missing.output and "エラー" in missing.output
    unknown = CliRunner().invoke(app, ["agent", "run", "--bogus"], env={"COLUMNS": "80"})
    assert unknown.exit_code == 2 and "オプション --bogus はありません。" in unknown.output
    assert not [word for word in ENGLISH if word in missing.output + unknown.output]


def test_times_are_shown_in_jst() -> None:
    assert jst("2026-12-01T23:30:00+00:00") == "2026-12-02 08:30 JST"
    assert jst("2026-12-01T23:30:00") == "2026-12-02 08:30 JST"  # naive = UTC, as the services store it
    assert jst(None) == "—"
