"""The return path end to end: the real My Number agent delivers, the gateway links, a caseworker decides on some
children and sends their residents' record tokens back; the agent writes exactly those children's 宛名番号."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agents.core.config import load_config
from agents.core.pipeline import run
from agents.core.token import RecordTokeniser
from synthetic.samples import write_samples
from gateway import casework, returnpath, support
from gateway.core import Gateway
from gateway.errors import GatewayError
from gateway.identity import User
from gateway.ingest import ingest
from gateway.link import run_linkage
from keys.return_list import ReturnListError
from tests.support.agents import AGENT_PASSPHRASE, OPERATOR, PRESETS, Municipality, enrol_agent, write_agent_toml
from tests.integration.agents.test_end_to_end import municipal_policy
from tsunagu.cli import app

CASEWORKER = User(2, "caseworker", "caseworker")


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_the_agent_writes_exactly_the_decided_records(municipality: Municipality, tmp_path: Path) -> None:
    files = tmp_path / "town"
    write_samples(files, children=200, seed=5)
    home = tmp_path / "mynumber-1"
    home.mkdir()
    public = enrol_agent(municipality, home, "mynumber-1")
    sources = [("residents.toml", "residents.csv"), ("maternal.toml", "maternal.tsv")]
    write_agent_toml(home, "mynumber-1", "mynumber",
                     [(PRESETS / "mynumber_network" / "mappings" / m, files / "mynumber_network" / d) for m, d in sources],
                     policy=PRESETS / "mynumber_network" / "policy.toml", gaiji=files / "mynumber_network" / "gaiji.toml")
    config = load_config(home / "agent.toml")
    result = run(config, AGENT_PASSPHRASE, bundle_out=tmp_path / "usb")
    assert result.ok

    _cli("gateway", "init", "--home", str(tmp_path / "gateway"), "--linkage-key-id", municipality.ring.current_linkage_key_id,
         "--policy", str(municipal_policy(tmp_path / "policy.toml")))
    _cli("gateway", "agent", "register", "--home", str(tmp_path / "gateway"), "--agent-public", str(public), "--network", "mynumber",
         "--source", "residents", "--source", "maternal")
    gw = Gateway.open(tmp_path / "gateway")
    try:
        for bundle in sorted((tmp_path / "usb").glob("*.jsonl")):
            assert ingest(gw, bundle.read_bytes(), "import").status == "accepted"
        run_linkage(gw)
        persons = [p["person_id"] for p in casework.list_persons(gw, source="residents", limit=200)["persons"]]
        decided = persons[3:9]
        cases = [support.open_case(gw, CASEWORKER, p, assessment="needs_support", difficulties=["poverty"], status="supporting",
                                   supports=["financial"])["id"] for p in decided]
        support.open_case(gw, CASEWORKER, persons[10], assessment="watch")  # not sent: nobody decided to act on it

        with pytest.raises(GatewayError) as refused:
            returnpath.create(gw, CASEWORKER, "residents", "line_notice", "no_such_purpose", cases)
        assert refused.value.code == "purpose_refused"
        with pytest.raises(GatewayError) as unknown:
            returnpath.create(gw, CASEWORKER, "residents", "send_money", "early_support", cases)
        assert unknown.value.code == "unknown_action"

        made = returnpath.create(gw, CASEWORKER, "residents", "line_notice", "early_support", cases)
        list_file = returnpath.write_file(gw, CASEWORKER, made["id"], tmp_path / "carry")
        tokens = {r["token"] for p in decided for r in casework.person(gw, p, "caseworker")["records"] if r["source"] == "residents"}
        assert made["records"] == len(tokens) and made["cases_without_record"] == []
        key = tmp_path / "gateway-return-key.txt"
        key.write_text(_cli("returns", "key", "--home", str(tmp_path / "gateway")).strip() + "\n", encoding="utf-8")
        entries = list(gw.audit.entries())
    finally:
        gw.close()
    logged = [e for e in entries if e.action == "returns.send"]
    assert len(logged) == 1 and made["id"] in logged[0].target and made["content_sha256"] in logged[0].outcome
    assert [e.action for e in entries].count("returns.download") == 1

    # What the list carries: the department's tokens, nothing else.
    text = list_file.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert {json.loads(line)["t"] for line in lines[1:]} == tokens
    manifest = json.loads(lines[0])["manifest"]
    assert (manifest["source"], manifest["action"], manifest["purpose"], manifest["record_count"]) == (
        "residents", "line_notice", "early_support", len(tokens))

    printed = _cli("returns", "resolve", "--home", str(home), "--list", str(list_file), "--gateway-key", str(key))
    assert f"{len(tokens)} 件を照合しました" in printed
    out = home / "returns" / f"{made['id']}.csv"
    assert out.stat().st_mode & 0o077 == 0
    with out.open(encoding="utf-8-sig") as fh:
        written = list(csv.DictReader(fh))

    # Independently: which 宛名番号 have these tokens (the department's own file, the municipality's secret).
    tokeniser = RecordTokeniser(municipality.ring.linkage_secret(OPERATOR).secret, "residents")
    with (files / "mynumber_network" / "residents.csv").open(encoding="cp932") as fh:
        expected = {row["宛名番号"] for row in csv.DictReader(fh) if tokeniser.token(row["宛名番号"]) in tokens}
    assert {r["record_id"] for r in written} == expected and len(written) == len(expected) == len(tokens)
    assert {(r["action"], r["purpose"], r["list_id"]) for r in written} == {("line_notice", "early_support", made["id"])}

    # A list changed on the way, or signed by another key, is refused.
    forged = list_file.with_name("forged.jsonl")
    forged.write_text(text.replace(lines[1], json.dumps({"t": hashlib.sha256(b"x").hexdigest()[:32]})), encoding="utf-8")
    from agents.core.returns import resolve

    with pytest.raises(ReturnListError):
        resolve(config, AGENT_PASSPHRASE, forged.read_bytes(), key.read_text(encoding="utf-8").strip())
