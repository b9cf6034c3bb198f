"""`tsunagu agent check` and `tsunagu agent run` through the installed command: Japanese messages, exit codes, the passphrase file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.support.agents import AGENT_PASSPHRASE, PRESETS, Municipality, enrol_agent, write_agent_toml
from tests.support.server import free_port

TSUNAGU = Path(__file__).resolve().parents[3] / ".venv" / "bin" / "tsunagu"
EDU = PRESETS / "edu_network"


def tsunagu(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TSUNAGU_HOME"}
    return subprocess.run([str(TSUNAGU), *args], capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)


def agent_home(municipality: Municipality, tmp_path: Path, gateway: str | None = None) -> Path:
    home = tmp_path / "edu"
    home.mkdir()
    enrol_agent(municipality, home, "edu-1")
    shutil.copy(EDU / "samples" / "school.csv", home / "school.csv")
    write_agent_toml(home, "edu-1", "edu", [(EDU / "mappings" / "school.toml", home / "school.csv")], gateway=gateway,
                     policy=EDU / "policy.toml")
    return home


def test_check_prints_what_would_be_sent_and_sends_nothing(municipality: Municipality, tmp_path: Path) -> None:
    home = agent_home(municipality, tmp_path, gateway=f"http://127.0.0.1:{free_port()}")
    r = tsunagu("agent", "check", "--config", str(home / "agent.toml"))
    assert r.returncode == 0, r.stderr
    assert "[確認] データ元 school" in r.stdout and "送る属性: absence_days、school_aid" in r.stdout
    assert "読まない列（送りません）: 学年、組" in r.stdout and "連携鍵: lk_" in r.stdout
    assert not (home / "outbox").exists()


def test_run_bundle_then_gateway_down_exits_non_zero(municipality: Municipality, tmp_path: Path) -> None:
    home = agent_home(municipality, tmp_path, gateway=f"http://127.0.0.1:{free_port()}")
    r = tsunagu("agent", "run", "--home", str(home), "--bundle-out", str(tmp_path / "bundle"))
    assert r.returncode == 0, r.stderr
    assert "[書き出し済み] 連番 1（school）" in r.stdout
    (home / "school.csv").write_bytes((home / "school.csv").read_bytes() + "S9999999,,,山田　一,やまだ　はじめ,H27.4.2,男,,,0,0,0,受診\r\n".encode("cp932"))
    r = tsunagu("agent", "run", "--home", str(home))
    assert r.returncode == 1
    assert "[送信待ち] 連番 2（school）" in r.stdout and "接続できません" in r.stdout
    status = json.loads((home / "status.json").read_text(encoding="utf-8"))
    assert status["result"] == "failed" and status["outbox"] == 1
    assert AGENT_PASSPHRASE not in r.stdout + r.stderr + (home / "status.json").read_text(encoding="utf-8")


def test_passphrase_file_readable_by_others_is_refused(municipality: Municipality, tmp_path: Path) -> None:
    home = agent_home(municipality, tmp_path)
    (home / "passphrase.txt").chmod(0o644)
    r = tsunagu("agent", "run", "--home", str(home), "--bundle-out", str(tmp_path / "bundle"))
    assert r.returncode == 2 and "chmod 600" in r.stderr and "Traceback" not in r.stderr


def test_wrong_passphrase_is_a_message_not_a_traceback(municipality: Municipality, tmp_path: Path) -> None:
    home = agent_home(municipality, tmp_path)
    (home / "passphrase.txt").write_text("wrong-passphrase-000\n", encoding="utf-8")
    r = tsunagu("agent", "run", "--home", str(home), "--bundle-out", str(tmp_path / "bundle"))
    assert r.returncode == 2 and r.stderr.startswith("エラー: ") and "Traceback" not in r.stderr
    assert "wrong-passphrase-000" not in r.stderr
    assert json.loads((home / "status.json").read_text(encoding="utf-8"))["result"] == "failed"


def test_bad_schedule_is_explained(municipality: Municipality, tmp_path: Path) -> None:
    home = agent_home(municipality, tmp_path)
    r = tsunagu("agent", "run", "--home", str(home), "--bundle-out", str(tmp_path / "b"), "--schedule", "every night")
    assert r.returncode == 2 and "cron 形式として読めません" in r.stderr


def test_schedule_runs_the_agent_on_each_trigger(municipality: Municipality, tmp_path: Path, monkeypatch) -> None:
    from apscheduler.schedulers.blocking import BlockingScheduler
    from typer.testing import CliRunner

    from tsunagu.cli import app

    home = agent_home(municipality, tmp_path)
    fired: list[str] = []

    def start_once(self: BlockingScheduler, *args: object, **kwargs: object) -> None:
        for job in self._pending_jobs:
            fired.append(str(job[0].trigger))
            job[0].func()

    monkeypatch.setattr(BlockingScheduler, "start", start_once)
    result = CliRunner().invoke(app, ["agent", "run", "--home", str(home), "--bundle-out", str(tmp_path / "b"), "--schedule", "0 2 * * *"])
    assert result.exit_code == 0, result.output
    assert "定期実行を始めます（0 2 * * *" in result.output and fired == ["cron[month='*', day='*', day_of_week='*', hour='2', minute='0']"]
    assert json.loads((home / "status.json").read_text(encoding="utf-8"))["result"] == "ok"
    assert list((tmp_path / "b").glob("edu-1-0000000001-school.jsonl"))


def test_missing_escrow_key_is_explained(municipality: Municipality, tmp_path: Path) -> None:
    home = agent_home(municipality, tmp_path)
    (home / "escrow-public.json").unlink()
    r = tsunagu("agent", "check", "--home", str(home))
    assert r.returncode == 2 and "エスクロー公開鍵" in r.stderr and "escrow-public.json" in r.stderr
