"""The agent streams a department file (issue #15, build 3): chunked encoding, random parts, and a late error sends nothing.

Real agent keys, real files, real bundles. The file is encoded in small chunks here (``CHUNK_ROWS`` lowered) so
that a small file crosses many chunk boundaries, as a city's file does; the memory figure itself is printed by
``python -m bench.agents``, not asserted.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from agents.core import package
from agents.core.config import load_config
from agents.core.pipeline import run
from agents.core.token import RecordTokeniser
from synthetic.samples import write_samples
from keys.enrolment import load_linkage_secret
from keys.submission import read_submission
from tests.support.agents import AGENT_PASSPHRASE, PRESETS, Municipality, enrol_agent, write_agent_toml

SCHOOL_MAPPING = PRESETS / "edu_network" / "mappings" / "school.toml"


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(package, "CHUNK_ROWS", 7)


def _agent(municipality: Municipality, tmp_path: Path, per_part: int) -> tuple[Path, Path]:
    write_samples(tmp_path / "town", children=400, seed=5)
    school = tmp_path / "town" / "edu_network" / "school.csv"
    home = tmp_path / "edu-1"
    home.mkdir()
    enrol_agent(municipality, home, "edu-1")
    toml = write_agent_toml(home, "edu-1", "edu", [(SCHOOL_MAPPING, school)], policy=PRESETS / "edu_network" / "policy.toml")
    toml.write_text(toml.read_text(encoding="utf-8").replace("[agent]\n", f"[agent]\nrecords_per_part = {per_part}\n"), encoding="utf-8")
    return toml, school


def _file_tokens(home: Path, school: Path) -> list[str]:
    tokeniser = RecordTokeniser(load_linkage_secret(home, AGENT_PASSPHRASE).secret, "school")
    with school.open(encoding="cp932", newline="") as fh:
        return [tokeniser.token(row["学籍番号"]) for row in csv.DictReader(fh)]


def _delivered(folder: Path) -> list[tuple[dict, list[str]]]:
    out = []
    for path in sorted(folder.glob("*.jsonl")):
        sub = read_submission(path.read_bytes())
        out.append((sub.manifest, [r.token for r in sub.records]))
    return out


def test_a_snapshot_travels_in_parts_whose_order_says_nothing_about_the_file(municipality: Municipality, tmp_path: Path,
                                                                              small_chunks: None) -> None:
    toml, school = _agent(municipality, tmp_path, per_part=60)
    config = load_config(toml)
    file_order = _file_tokens(config.home, school)
    assert len(file_order) > 200

    first = run(config, AGENT_PASSPHRASE, bundle_out=tmp_path / "usb1")
    assert first.ok and first.sources[0].encoded == len(file_order) and first.sources[0].rows == len(file_order)
    parts = _delivered(tmp_path / "usb1")
    assert len(parts) == -(-len(file_order) // 60)
    manifests = [m for m, _ in parts]
    assert [m["part"] for m in manifests] == list(range(1, len(parts) + 1)) and {m["parts"] for m in manifests} == {len(parts)}
    assert len({m["batch_id"] for m in manifests}) == 1 and len({str(m["seal_header"]) for m in manifests}) == 1
    sent = [t for _, tokens in parts for t in tokens]
    # Every record once, and in no order the file had: neither the whole nor a part follows the file's rows.
    assert sorted(sent) == sorted(file_order) and len(set(sent)) == len(sent)
    assert sent != file_order
    assert set(parts[0][1]) != set(file_order[:len(parts[0][1])])

    again = run(config, AGENT_PASSPHRASE, bundle_out=tmp_path / "usb2", force=True)
    assert again.ok
    resent = [t for _, tokens in _delivered(tmp_path / "usb2") for t in tokens]
    assert sorted(resent) == sorted(file_order) and resent != sent  # a fresh order for every snapshot
    assert not (config.home / "state" / "spool").exists()  # nothing encoded is left outside the outbox


def test_problems_from_every_chunk_reach_the_report_in_row_order(municipality: Municipality, tmp_path: Path,
                                                                 small_chunks: None) -> None:
    toml, school = _agent(municipality, tmp_path, per_part=1000)
    lines = school.read_bytes().decode("cp932").split("\r\n")
    bad = [5, 40, 41, 90, 150]  # data lines (1 = the first after the header) spread over many chunks of 7
    for n in bad:
        cells = lines[n].split(",")
        cells[0] = ""  # no record id: the row is not sent
        lines[n] = ",".join(cells)
    school.write_bytes("\r\n".join(lines).encode("cp932"))
    result = run(load_config(toml), AGENT_PASSPHRASE, bundle_out=tmp_path / "usb")
    source = result.sources[0]
    assert result.ok and source.problems == len(bad) and source.encoded == source.rows - len(bad)
    with open(source.report, encoding="utf-8-sig", newline="") as fh:
        rows = [int(r["行"]) for r in csv.DictReader(fh)]
    assert rows == [n + 1 for n in bad]  # file row numbers (the header is row 1), in order
    assert source.sample_problems[0].startswith(f"{bad[0] + 1} 行目")


def test_a_bad_byte_near_the_end_of_a_file_sends_nothing_of_it(municipality: Municipality, tmp_path: Path,
                                                              small_chunks: None) -> None:
    toml, school = _agent(municipality, tmp_path, per_part=60)
    good = school.read_bytes()
    data = good.rstrip(b"\r\n").split(b"\r\n")
    data[-2] += b"\xa0"  # in the last cell of the last row but one: found only when the stream gets there
    school.write_bytes(b"\r\n".join(data) + b"\r\n")
    config = load_config(toml)
    result = run(config, AGENT_PASSPHRASE, bundle_out=tmp_path / "usb")
    source = result.sources[0]
    assert source.status == "failed" and "0xA0" in source.message and f"{len(data) - 1} 行目" in source.message
    assert not list((tmp_path / "usb").glob("*.jsonl")) and result.outbox == 0
    assert not (config.home / "state" / "spool").exists()

    school.write_bytes(good)
    retried = run(config, AGENT_PASSPHRASE, bundle_out=tmp_path / "usb")  # the failed file was not marked as sent
    assert retried.ok and retried.sources[0].status == "sent"
