"""Agent state that survives restores and copies (issue #15, build 1), with real agents, real files and the real gateway.

* ``state/`` restored from a backup, then runs: nothing lost — the gateway ends with every row of the current file.
* the agent's folder cloned and both copies run: the second copy is refused (a fork) and overwrites nothing; after
  ``tsunagu agent resync`` on the copy kept, it delivers and the other copy is the one refused.
* an old receipt with the same sequence number does not make a new submission look delivered (content hash).
* a submission an agent left in its outbox before the upgrade (an old wire format) is refused once, with a reason
  that says so, kept in ``refused/`` and not retried; the next run snapshots the source again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agents.core.config import load_config
from agents.core.pipeline import RunError, run
from synthetic.samples import write_samples
from tests.support.agents import AGENT_PASSPHRASE, PRESETS, Municipality, enrol_agent, write_agent_toml
from tests.integration.agents.test_end_to_end import Server, gateway, tsunagu  # noqa: F401 - the gateway fixture

pytestmark = pytest.mark.slow

SCHOOL_MAPPING = PRESETS / "edu_network" / "mappings" / "school.toml"
TSUNAGU = str(Path(sys.executable).with_name("tsunagu"))


def _school_rows(gateway_home: Path) -> int:
    with sqlite3.connect(gateway_home / "gateway.db") as db:
        return db.execute("SELECT count(*) FROM records WHERE source = 'school'").fetchone()[0]


def _file_rows(path: Path) -> int:
    return len(path.read_text(encoding="cp932").splitlines()) - 1


def _append(path: Path, first: int, count: int) -> None:
    lines = "".join(f"S{9000000 + i},小1,1,山田　{'一二三四五六七八九十'[i % 10]},やまだ　はじめ,H30.4.{1 + i % 28},男,,,0,0,0,受診\r\n"
                    for i in range(first, first + count))
    path.write_bytes(path.read_bytes() + lines.encode("cp932"))


def _edu_agent(municipality: Municipality, gateway: Server, tmp_path: Path, school: Path) -> Path:
    home = tmp_path / "edu-1"
    home.mkdir()
    public = enrol_agent(municipality, home, "edu-1")
    tsunagu("gateway", "agent", "register", "--home", str(gateway.home), "--agent-public", str(public), "--network", "edu",
            "--source", "school")
    _toml(home, gateway, school)
    return home


def _toml(home: Path, gateway: Server, school: Path) -> None:
    # Generous timeouts: a busy 2-core machine can take seconds to answer.
    write_agent_toml(home, "edu-1", "edu", [(SCHOOL_MAPPING, school)], gateway=f"https://127.0.0.1:{gateway.port}",
                     ca_file=gateway.cert, policy=PRESETS / "edu_network" / "policy.toml",
                     extra_gateway="attempts = 3\nbackoff_seconds = 0.5\ntimeout_seconds = 180\n")


def _school(tmp_path: Path, name: str = "town") -> Path:
    write_samples(tmp_path / name, children=150, seed=11)
    return tmp_path / name / "edu_network" / "school.csv"


def test_restored_state_loses_nothing(municipality: Municipality, gateway: Server, tmp_path: Path) -> None:
    school = _school(tmp_path)
    home = _edu_agent(municipality, gateway, tmp_path, school)
    config = load_config(home / "agent.toml")
    assert run(config, AGENT_PASSPHRASE).ok
    backup = tmp_path / "backup-state"
    shutil.copytree(home / "state", backup)
    for first in (0, 10):  # two more snapshots after the backup
        _append(school, first, 10)
        assert run(config, AGENT_PASSPHRASE).ok
    assert _school_rows(gateway.home) == _file_rows(school)

    def restore() -> None:
        shutil.rmtree(home / "state")
        shutil.copytree(backup, home / "state")

    # Restored: sequence.json says 2 again and sent/0000000002.json is a receipt for other bytes.
    restore()
    _append(school, 20, 10)
    after = run(config, AGENT_PASSPHRASE)
    assert after.ok, after
    assert any("ゲートウェイの記録に合わせました" in n for n in after.notes)
    assert after.sources[0].status == "sent" and after.sources[0].sequence == 4
    assert _school_rows(gateway.home) == _file_rows(school)

    # Restored again while the file stays the same: the current file is still what the gateway ends with.
    restore()
    same = run(config, AGENT_PASSPHRASE)
    assert same.ok and same.sources[0].status == "sent" and same.sources[0].sequence == 5
    assert _school_rows(gateway.home) == _file_rows(school)
    assert json.loads((home / "status.json").read_text(encoding="utf-8"))["result"] == "ok"


def test_a_cloned_agent_is_refused_until_resync(municipality: Municipality, gateway: Server, tmp_path: Path) -> None:
    school = _school(tmp_path)
    home = _edu_agent(municipality, gateway, tmp_path, school)
    config = load_config(home / "agent.toml")
    assert run(config, AGENT_PASSPHRASE).ok

    clone = tmp_path / "other-machine" / "edu-1"
    shutil.copytree(home, clone)
    small = _school(tmp_path, "older-export")
    small.write_bytes(b"\r\n".join(small.read_bytes().split(b"\r\n")[:51]) + b"\r\n")  # 50 rows only
    _toml(clone, gateway, small)
    clone_config = load_config(clone / "agent.toml")

    _append(school, 0, 5)
    assert run(config, AGENT_PASSPHRASE).ok
    kept = _school_rows(gateway.home)
    assert kept == _file_rows(school)

    with pytest.raises(RunError) as refused:
        run(clone_config, AGENT_PASSPHRASE)
    message = str(refused.value)
    assert "別の場所でも動いています" in message and str(home) in message and "tsunagu agent resync" in message
    assert json.loads((clone / "status.json").read_text(encoding="utf-8"))["result"] == "failed"
    assert _school_rows(gateway.home) == kept  # nothing overwritten
    assert not list((clone / "outbox").glob("*.jsonl"))

    # The operator keeps the copy on the other machine: resync there (the real CLI), then it delivers ...
    out = subprocess.run([TSUNAGU, "agent", "resync", "--home", str(clone)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "引き継ぎました" in out.stdout
    moved = run(clone_config, AGENT_PASSPHRASE)
    assert moved.ok, moved
    assert _school_rows(gateway.home) == 50
    # ... and the first copy, still running, is now the one refused.
    _append(school, 5, 5)
    with pytest.raises(RunError, match="別の場所でも動いています"):
        run(config, AGENT_PASSPHRASE)
    assert _school_rows(gateway.home) == 50


def test_a_snapshot_in_parts_is_committed_all_at_once_and_resumes(municipality: Municipality, gateway: Server,
                                                                   tmp_path: Path) -> None:
    school = _school(tmp_path)
    home = _edu_agent(municipality, gateway, tmp_path, school)
    toml = home / "agent.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace("[agent]\n", "[agent]\nrecords_per_part = 20\n"), encoding="utf-8")
    pushed = run(load_config(toml), AGENT_PASSPHRASE)
    assert pushed.ok and len(pushed.deliveries) == -(-pushed.sources[0].encoded // 20) >= 3
    assert _school_rows(gateway.home) == pushed.sources[0].encoded == _file_rows(school)

    # The same agent carries the next snapshot on media, in parts: the gateway keeps the old records until the last part.
    _append(school, 0, 30)
    write_agent_toml(home, "edu-1", "edu", [(SCHOOL_MAPPING, school)], policy=PRESETS / "edu_network" / "policy.toml")
    toml.write_text(toml.read_text(encoding="utf-8").replace("[agent]\n", "[agent]\nrecords_per_part = 20\n"), encoding="utf-8")
    media = tmp_path / "usb"
    bundled = run(load_config(toml), AGENT_PASSPHRASE, bundle_out=media)
    assert bundled.ok
    parts = sorted(media.glob("*.jsonl"))
    assert len(parts) == len(bundled.deliveries) >= 3
    before = _school_rows(gateway.home)

    def imported(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([TSUNAGU, "gateway", "import", "--home", str(gateway.home), str(path)], capture_output=True,
                              text=True, timeout=300)

    for part in parts[:-2]:
        assert imported(part).returncode == 0
        assert _school_rows(gateway.home) == before  # nothing replaced yet
    early = imported(parts[-1])  # the last part before the one ahead of it: refused, nothing replaced
    assert early.returncode != 0 and "そろっていません" in early.stdout + early.stderr
    assert _school_rows(gateway.home) == before
    assert json.loads(imported(parts[0]).stdout)["status"] == "duplicate"  # resuming re-sends are harmless
    assert imported(parts[-2]).returncode == 0
    assert _school_rows(gateway.home) == before
    assert json.loads(imported(parts[-1]).stdout)["status"] == "accepted"
    assert _school_rows(gateway.home) == _file_rows(school) == bundled.sources[0].encoded


def _as_old_agent_wrote_it(outbox: Path) -> list[int]:
    """Rewrite every waiting submission as an agent before the upgrade wrote it (wire format 1, no envelope kind)."""
    rewritten = []
    for path in sorted(outbox.glob("*.jsonl")):
        head, rest = path.read_bytes().split(b"\n", 1)
        envelope = json.loads(head)
        envelope["manifest"] = {**{k: v for k, v in envelope["manifest"].items() if k != "kind"},
                                "format": "tsunagu-submission", "version": 1}
        data = json.dumps(envelope).encode() + b"\n" + rest
        path.write_bytes(data)
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        meta["sha256"] = hashlib.sha256(data).hexdigest()
        path.with_suffix(".json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        rewritten.append(int(path.stem))
    return rewritten


def test_an_outbox_left_by_an_old_agent_is_refused_once_and_nothing_is_lost(municipality: Municipality, gateway: Server,
                                                                            tmp_path: Path) -> None:
    school = _school(tmp_path)
    home = _edu_agent(municipality, gateway, tmp_path, school)
    config = load_config(home / "agent.toml")
    assert run(config, AGENT_PASSPHRASE).ok
    # The gateway is down for the upgrade; the old agent's last snapshot waits in its outbox.
    gateway.stop()
    _append(school, 0, 10)
    waiting = run(config, AGENT_PASSPHRASE)
    assert not waiting.ok and waiting.outbox == 1
    old = _as_old_agent_wrote_it(home / "outbox")
    assert len(old) == 1
    gateway.start()

    refused = run(config, AGENT_PASSPHRASE)
    assert not refused.ok
    [outcome] = [d for d in refused.deliveries if d.sequence == old[0]]
    assert outcome.status == "refused" and outcome.response["error"] == "unknown_version"
    assert "更新前の版" in outcome.message and "データは失われません" in outcome.message
    status = json.loads((home / "status.json").read_text(encoding="utf-8"))
    assert status["result"] == "failed"
    assert [d["message"] for d in status["deliveries"] if d["sequence"] == old[0]] == [outcome.message]
    assert not list((home / "outbox").glob("*.jsonl"))  # not retried: kept in refused/ with the gateway's reason
    assert (home / "refused" / f"{old[0]:010d}.jsonl").exists()
    assert _school_rows(gateway.home) == _file_rows(school) - 10  # the gateway still has the last accepted snapshot

    # The next run snapshots the source again in the new format; the refused envelope is not sent again.
    again = run(config, AGENT_PASSPHRASE)
    assert again.ok, again
    assert old[0] not in [d.sequence for d in again.deliveries]
    assert [d.status for d in again.deliveries] == ["delivered"]
    assert _school_rows(gateway.home) == _file_rows(school)
    assert run(config, AGENT_PASSPHRASE).deliveries == []  # and nothing afterwards either
