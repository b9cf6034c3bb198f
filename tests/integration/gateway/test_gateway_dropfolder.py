"""Submission files: `tsunagu gateway import` and the watched drop folder (imported/ and rejected/ with the reason; symlinks refused)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from synthetic import Town

from tests.support.gateway import Home
from synthetic.agents import SyntheticAgent
from keys import envelope


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
    assert sorted(p.name for p in (drop / "rejected").iterdir()) == [
        "garbage.jsonl", "garbage.jsonl.reason.txt", "npo-1.jsonl", "npo-1.jsonl.reason.txt"]
    reason = (drop / "rejected" / "npo-1.jsonl.reason.txt").read_text(encoding="utf-8")
    assert reason.startswith("forbidden_attribute") and "individual_number" in reason and "個人番号" in reason
    assert not [p for p in drop.iterdir() if p.is_file()]


def test_drop_folder_rejects_bad_files_and_symlinks_and_goes_on(home: Home, town: Town, agents: dict[str, SyntheticAgent],
                                                                 tmp_path: Path) -> None:
    """A deeply nested file, an unsigned huge head, a symlink and a FIFO are each rejected with a reason; good files still import."""
    drop = tmp_path / "drop"
    drop.mkdir()
    secret = tmp_path / "outside.jsonl"  # a link's target must never be read nor moved
    secret.write_bytes(agents["school"].submit("school", town.sources["school"]))
    (drop / "a-deep.jsonl").write_bytes(b"[" * 200_000 + b"\n")
    # a well-formed envelope head naming an unknown agent, then records no parser should ever see
    head = {**{f: "x" for f in envelope.KINDS["submission"].fields}, "format": envelope.FORMAT, "version": envelope.VERSION,
            "kind": "submission", "agent_id": "nobody", "sequence": 1, "record_count": 1, "content_sha256": "0" * 64}
    (drop / "b-deep-records.jsonl").write_bytes(json.dumps({"manifest": head, "signature": ""}).encode() + b"\n" + b"[" * 100_000)
    (drop / "c-link.jsonl").symlink_to(secret)
    os.mkfifo(drop / "d-fifo.jsonl")
    (drop / "e-school.jsonl").write_bytes(agents["school"].submit("school", town.sources["school"]))
    out = home.cli("watch", "--drop", str(drop), "--once")
    assert "取込: e-school.jsonl" in out
    assert sorted(p.name for p in (drop / "imported").iterdir()) == ["e-school.jsonl"]
    rejected = drop / "rejected"
    names = sorted(p.name for p in rejected.iterdir())
    assert names == sorted([f"{n}{ext}" for n in ("a-deep.jsonl", "b-deep-records.jsonl", "c-link.jsonl", "d-fifo.jsonl")
                            for ext in ("", ".reason.txt")])
    assert (rejected / "c-link.jsonl").is_symlink() and secret.exists()  # the link moved as a link; the target untouched
    assert (rejected / "c-link.jsonl.reason.txt").read_text(encoding="utf-8").startswith("not_a_regular_file")
    assert (rejected / "a-deep.jsonl.reason.txt").read_text(encoding="utf-8").startswith("malformed_submission")
    assert (rejected / "b-deep-records.jsonl.reason.txt").read_text(encoding="utf-8").startswith("unknown_agent")
