"""Submission files: `tsunagu gateway import` and the watched drop folder (imported/ and refused/ with the reason)."""

from __future__ import annotations

import json
from pathlib import Path

from linkage.synthetic import Town

from gateway_support import Home
from gateway.synthetic import SyntheticAgent


def test_import_and_drop_folder(home: Home, town: Town, agents: dict[str, SyntheticAgent], tmp_path: Path) -> None:
    carried = tmp_path / "residents.jsonl"
    carried.write_bytes(agents["residents"].submit("residents", town.sources["residents"]))
    answer = json.loads(home.cli("import", str(carried)).strip().splitlines()[-1])
    assert answer["status"] == "accepted" and answer["accepted"] == len(town.sources["residents"])

    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "school-1.jsonl").write_bytes(agents["school"].submit("school", town.sources["school"]))
    (drop / "npo-1.jsonl").write_bytes(agents["npo"].submit("npo", town.sources["npo"], attributes={"individual_number": "1"}))
    (drop / "garbage.jsonl").write_bytes(b"\x00\x01 not a submission")
    out = home.cli("watch", "--drop", str(drop), "--once")
    assert "取込: school-1.jsonl" in out
    assert sorted(p.name for p in (drop / "imported").iterdir()) == ["school-1.jsonl"]
    assert sorted(p.name for p in (drop / "refused").iterdir()) == [
        "garbage.jsonl", "garbage.jsonl.reason.txt", "npo-1.jsonl", "npo-1.jsonl.reason.txt"]
    reason = (drop / "refused" / "npo-1.jsonl.reason.txt").read_text(encoding="utf-8")
    assert reason.startswith("forbidden_attribute") and "individual_number" in reason and "個人番号" in reason
    assert not [p for p in drop.iterdir() if p.is_file()]
