"""The federation secret's way: coordinator (prefecture) → member municipality → its My Number agent, and the agent's federation encodings."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from tests.support.federation import Town, cli
from typer.testing import CliRunner

from agents.core import package
from agents.core.config import load_config
from agents.core.token import RecordTokeniser
from agents.core.deliver import Outbox
from agents.core.pipeline import run
from keys import custody, enrolment
from keys import federation as f
from keys.errors import KeysError
from keys.keyring import Keyring, init_municipality
from synthetic.samples import write_samples
from keys.passphrase import KdfParams
from tsunagu.cli import app

KDF = KdfParams(memory_kib=1024, iterations=1, lanes=1)
OPERATOR, COORDINATOR, AGENT = "operator-passphrase-1", "coordinator-pass-1", "agent-passphrase-xyz"
PRESET = Path(__file__).resolve().parents[4] / "agents" / "mynumber_network"


def _municipality(root: Path, code: str) -> Path:
    home = root / f"keys-{code}"
    init_municipality(home, code, [custody.Custodian("佐藤", "custodian-pass-1"), custody.Custodian("鈴木", "custodian-pass-2")],
                      2, OPERATOR, KDF)
    return home


@pytest.fixture
def federation(tmp_path: Path) -> dict:
    pref = tmp_path / "pref"
    made = f.init_coordinator(pref, "ibaraki-2026", COORDINATOR, KDF)
    member = _municipality(tmp_path, "082201")
    wrapped = f.issue(pref, COORDINATOR, f.member_identity(member, OPERATOR, KDF), tmp_path / "out")
    return {"pref": pref, "made": made, "member": member, "wrapped": wrapped, "root": tmp_path}


def test_member_installs_the_secret_wrapped_for_it(federation: dict) -> None:
    member, made = federation["member"], federation["made"]
    name, key_id = f.install(member, federation["wrapped"], OPERATOR, made.coordinator_vkey, KDF)
    assert (name, key_id) == ("ibaraki-2026", made.key_id)
    _, secret = f.load_secret(member, OPERATOR)
    assert secret.key_id == made.key_id != Keyring(member).current_linkage_key_id  # its own domain, its own key id
    wrapped_text = federation["wrapped"].read_text(encoding="utf-8")
    assert secret.secret.hex() not in wrapped_text


def test_wrong_member_tampered_file_and_foreign_coordinator_are_refused(federation: dict) -> None:
    root, made = federation["root"], federation["made"]
    other = _municipality(root, "082210")
    f.member_identity(other, OPERATOR, KDF)
    with pytest.raises(KeysError, match="宛て"):
        f.install(other, federation["wrapped"], OPERATOR, made.coordinator_vkey, KDF)
    tampered = root / "tampered.json"
    doc = json.loads(federation["wrapped"].read_text(encoding="utf-8"))
    doc["federation"] = "other"
    tampered.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(KeysError):
        f.install(federation["member"], tampered, OPERATOR, made.coordinator_vkey, KDF)
    rogue = f.init_coordinator(root / "rogue", "rogue", COORDINATOR, KDF)
    with pytest.raises(KeysError, match="別の鍵"):
        f.install(federation["member"], federation["wrapped"], OPERATOR, rogue.coordinator_vkey, KDF)


def _federation_agent(federation: dict, gateway_url: str | None = None) -> tuple[Path, Path, Keyring]:
    """The member's My Number agent with the linkage and the federation secret installed: (home, public file, keyring)."""
    root, member = federation["root"], federation["member"]
    f.install(member, federation["wrapped"], OPERATOR, federation["made"].coordinator_vkey, KDF)
    agent_home = root / "agent"
    public = enrolment.init_agent(agent_home, "mynumber-1", AGENT, KDF)
    ring = Keyring(member)
    linkage_file = enrolment.AgentRegistry(member).enrol(enrolment.read_agent_public(public), ring.linkage_secret(OPERATOR),
                                                         ring.federation_signer(OPERATOR), root / "incoming")
    enrolment.install_linkage_secret(agent_home, linkage_file, AGENT, params=KDF)
    federation_file = f.enrol_agent(member, OPERATOR, enrolment.read_agent_public(public), root / "incoming")
    assert f.install_agent(agent_home, federation_file, AGENT, KDF) == federation["made"].key_id
    shutil.copy(member / "keys" / "escrow-public.json", agent_home / "escrow-public.json")
    (agent_home / "passphrase.txt").write_text(AGENT + "\n", encoding="utf-8")
    (agent_home / "passphrase.txt").chmod(0o600)
    (agent_home / "agent.toml").write_text("\n".join([
        "[agent]", 'id = "mynumber-1"', 'municipality = "082201"', 'network = "mynumber"', 'passphrase_file = "passphrase.txt"',
        'escrow_public_key = "escrow-public.json"', f'policy = "{PRESET / "policy.toml"}"', f'gaiji = "{PRESET / "samples" / "gaiji.toml"}"',
        "", "[[sources]]", f'mapping = "{PRESET / "mappings" / "residents.toml"}"', f'file = "{PRESET / "samples" / "residents.csv"}"',
        *(["", "[gateway]", f'url = "{gateway_url}"'] if gateway_url else []),
    ]) + "\n", encoding="utf-8")
    return agent_home, public, ring


def _gateway(home: Path, public: Path, ring: Keyring, federation: dict) -> None:
    """A gateway home with the agent registered for 住民記録 and this municipality's federation configured."""
    cli("gateway", "init", "--home", str(home), "--linkage-key-id", ring.current_linkage_key_id)
    cli("gateway", "agent", "register", "--home", str(home), "--agent-public", str(public), "--network", "mynumber", "--source", "residents")
    cli("federation", "init", "--home", str(home), "--code", "082201", "--name", "水戸市", "--contact", "こども家庭センター",
        "--federation-key-id", federation["made"].key_id, "--purpose", "early_support")


def _moved() -> int:
    """How many of the sample 住民記録's rows carry a 転入元 or 転出先 code."""
    with (PRESET / "samples" / "residents.csv").open(encoding="cp932", newline="") as f_csv:
        return sum(1 for r in csv.DictReader(f_csv) if r["転入元市区町村コード"].strip() or r["転出先市区町村コード"].strip())


def test_agent_sends_federation_encodings_of_transferred_children_only(federation: dict) -> None:
    root = federation["root"]
    agent_home, public, ring = _federation_agent(federation)
    bundles = root / "usb"
    result = run(load_config(agent_home / "agent.toml"), AGENT, bundle_out=bundles)
    assert result.ok, result
    federation_bundles = sorted(bundles.glob("*-federation.jsonl"))
    assert len(federation_bundles) == 1
    # the gateway takes it (registered My Number agent, the federation key id it is configured with)
    gateway = root / "gateway"
    _gateway(gateway, public, ring, federation)
    out = cli("federation", "ingest", str(federation_bundles[0]), "--home", str(gateway))
    moved = _moved()
    with (PRESET / "samples" / "residents.csv").open(encoding="cp932", newline="") as f_csv:
        assert 0 < moved < len(list(csv.DictReader(f_csv)))
    assert f"{moved} 件" in out  # exactly the sample 住民記録's rows with a 転入元 or 転出先 code
    text = federation_bundles[0].read_text(encoding="utf-8")
    for plain in ("宛名番号", "つなぐ市", "茨城県"):
        assert plain not in text
    # the same file again (an outbox resending after a lost answer): its first answer, stored once
    assert "受付済み" in cli("federation", "ingest", str(federation_bundles[0]), "--home", str(gateway))
    # another submission with a used sequence: refused
    manifest0, _sig, records0 = f.read_federation_submission(federation_bundles[0].read_bytes())
    replay = root / "replay.jsonl"
    replay.write_bytes(f.write_federation_submission(
        {k: v for k, v in manifest0.items() if k not in ("format", "version", "record_count", "content_sha256")},
        records0[:-1], enrolment.load_agent_keys(agent_home, AGENT).signing_key))
    assert CliRunner().invoke(app, ["federation", "ingest", str(replay), "--home", str(gateway)]).exit_code != 0
    # encodings under the municipality's own linkage key are not federation encodings: the key-id guard refuses them
    manifest, _signature, records = f.read_federation_submission(federation_bundles[0].read_bytes())
    manifest = {k: v for k, v in manifest.items() if k not in ("format", "version", "record_count", "content_sha256")}
    internal = root / "internal.jsonl"
    internal.write_bytes(f.write_federation_submission({**manifest, "sequence": manifest["sequence"] + 10,
                                                        "federation_key_id": ring.current_linkage_key_id},
                                                       records, enrolment.load_agent_keys(agent_home, AGENT).signing_key))
    refused = CliRunner().invoke(app, ["federation", "ingest", str(internal), "--home", str(gateway)])
    assert refused.exit_code != 0 and "鍵 ID の異なる符号化は比較できません" in str(refused.exception)


def test_federation_submission_waits_in_the_outbox_while_the_gateway_is_down(federation: dict) -> None:
    town = Town("082201", federation["root"] / "gateway")
    agent_home, public, ring = _federation_agent(federation, town.url)
    _gateway(town.home, public, ring, federation)
    # the gateway is not running: the snapshot and the federation submission are kept, not lost
    first = run(load_config(agent_home / "agent.toml"), AGENT)
    assert not first.ok
    kept = {item.kind: item for item in Outbox(agent_home).pending()}
    assert set(kept) == {"submission", "federation"}
    assert [d.status for d in first.deliveries if d.source == "residents:federation"] == ["pending"]
    town.start()
    try:
        later = run(load_config(agent_home / "agent.toml"), AGENT)
        assert later.ok, later
        sent = [d for d in later.deliveries if d.source == "residents:federation"]
        assert [d.status for d in sent] == ["delivered"]
        assert sent[0].sequence == kept["federation"].sequence  # the kept one, not a new one
        assert sent[0].response["status"] == "accepted" and sent[0].response["records"] == _moved()
        assert Outbox(agent_home).pending() == []
    finally:
        town.stop()


def _moves(residents: Path, tokeniser: RecordTokeniser) -> set[tuple[str, str, str]]:
    """(token, 転入元, 転出先) of every row of ``residents`` with either code: what the federation submission must carry."""
    with residents.open(encoding="cp932", newline="") as f_csv:
        return {(tokeniser.token(r["宛名番号"].strip()), r["転入元市区町村コード"].strip(), r["転出先市区町村コード"].strip())
                for r in csv.DictReader(f_csv) if r["転入元市区町村コード"].strip() or r["転出先市区町村コード"].strip()}


def test_transferred_children_kept_on_disk_reach_the_federation_submission_and_none_is_lost(
        federation: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    # A generated town's 住民記録, streamed in many small chunks: the transferred children are collected on disk
    # (state/transferred/, a RecordSpool) while the file streams, then encoded for federation after the snapshot.
    monkeypatch.setattr(package, "CHUNK_ROWS", 11)
    root = federation["root"]
    samples = write_samples(root / "town", children=800, seed=23)
    town = Town("082201", root / "gateway")
    agent_home, public, ring = _federation_agent(federation, town.url)
    toml = agent_home / "agent.toml"
    toml.write_text(toml.read_text(encoding="utf-8")
                    .replace(str(PRESET / "samples" / "residents.csv"), str(samples["residents"]))
                    .replace(str(PRESET / "samples" / "gaiji.toml"), str(samples["gaiji"])), encoding="utf-8")
    _gateway(town.home, public, ring, federation)
    expected = _moves(samples["residents"], RecordTokeniser(enrolment.load_linkage_secret(agent_home, AGENT).secret, "residents"))
    assert len(expected) > 3 * 11  # more transferred children than a few chunks hold
    spooled: list[list[str]] = []

    def progress(_size: int):
        def seen(_rows: int) -> None:
            spooled.append(sorted(p.name for p in (agent_home / "state" / "transferred").glob("*.sqlite")))
        return seen

    # The gateway is down: the federation submission waits in the outbox, built from the spool before it was removed.
    first = run(load_config(toml), AGENT, progress=progress)
    assert not first.ok
    assert any(len(names) == 1 for names in spooled)  # the run kept them in state/transferred/ while streaming
    assert not list((agent_home / "state" / "transferred").glob("*"))  # and removed them after
    kept = {item.kind: item for item in Outbox(agent_home).pending()}
    assert set(kept) == {"submission", "federation"} and kept["federation"].meta["records"] == len(expected)

    town.start()
    try:
        later = run(load_config(toml), AGENT)
        assert later.ok, later
        [sent] = [d for d in later.deliveries if d.source == "residents:federation"]
        assert sent.status == "delivered" and sent.sequence == kept["federation"].sequence
        assert sent.response["status"] == "accepted" and sent.response["records"] == len(expected)
    finally:
        town.stop()
    with sqlite3.connect(town.home / "gateway.db") as db:
        held = set(db.execute("SELECT token, coalesce(moved_in_from, ''), coalesce(moved_out_to, '') FROM federation_records "
                              "WHERE source = 'residents'").fetchall())
        residents = db.execute("SELECT count(*) FROM records WHERE source = 'residents'").fetchone()[0]
    assert held == expected  # every transferred child, with its codes; nothing lost, nothing else
    with samples["residents"].open(encoding="cp932", newline="") as f_csv:
        assert residents == len(list(csv.DictReader(f_csv)))  # and the snapshot itself is whole
