"""`tsunagu gateway` commands: refusals say what to do, in one line, without a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic import Town
from typer.testing import CliRunner

from synthetic.agents import SyntheticAgent
from tests.support.gateway import Home
from tsunagu.cli import app


def _fails(args: list[str], input: str | None = None) -> str:
    result = CliRunner().invoke(app, args, input=input)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    return result.output + repr(result.exception)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_refusals(home: Home, town: Town, agents: dict[str, SyntheticAgent], tmp_path: Path) -> None:
    h = ["--home", str(home.path)]
    assert "すでにあります" in _fails(["gateway", "init", *h, "--linkage-key-id", "lk_x"])
    assert "パスワードを引数に書かないでください" in _fails(
        ["gateway", "init", "--home", str(tmp_path / "other"), "--linkage-key-id", "lk_x", "--database-url", "postgresql+psycopg://u:secret@db/x"])
    assert "12 文字以上" in _fails(["gateway", "user", "add", *h, "--username", "short", "--role", "admin", "--password-stdin"], input="short\n")
    assert "ロール「janitor」はポリシーにありません" in _fails(
        ["gateway", "user", "add", *h, "--username", "x", "--role", "janitor", "--password-stdin"], input="long enough password\n")
    assert "ネットワーク edu のエージェントには登録できません" in _fails(
        ["gateway", "agent", "register", *h, "--agent-public", str(agents["npo"].public_file), "--network", "edu", "--source", "npo"])

    home.cli("agent", "revoke", "--agent-id", agents["npo"].agent_id, "--reason", "端末の廃棄")
    listed = home.cli("agent", "list")
    assert f"{agents['npo'].agent_id}\trevoked" in listed
    bundle = tmp_path / "npo.jsonl"
    bundle.write_bytes(agents["npo"].submit("npo", town.sources["npo"]))
    assert "失効しています" in _fails(["gateway", "import", *h, str(bundle)])
