"""demo.federation.run on a demo folder laid out as `make demo` leaves it (keys, gateway, My Number agent, secrets)."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import tomli_w
from tests.support.federation import cli

from synthetic.samples import write_samples
from demo.federation import run
from keys.keyring import Keyring

PRESET = Path(__file__).resolve().parents[4] / "agents" / "mynumber_network"
SECRETS = {"operator": "operator-pass-12", "agent": "agent-pass-1234", "gateway:tanaka": "tanaka-password-12"}


def _demo_town(demo: Path) -> None:
    demo.mkdir()
    (demo / "secrets.json").write_text(json.dumps(SECRETS), encoding="utf-8")
    keys, gateway, agent = demo / "keys", demo / "gateway", demo / "agent-mynumber"
    cli("keys", "init", "--home", str(keys), "--municipality", "000000", "--custodian", "a", "--custodian", "b", "--threshold", "2",
        "--passphrase-stdin", "--kdf-memory-kib", "1024", input="operator-pass-12\ncustodian-pass-1\ncustodian-pass-2\n")
    ring = Keyring(keys)
    policy = tomllib.loads((PRESET.parents[1] / "policy" / "default_policy.toml").read_text(encoding="utf-8"))
    policy["networks"]["mynumber"]["sources"].update(tomllib.loads((PRESET / "policy.toml").read_text(encoding="utf-8"))["networks"]["mynumber"]["sources"])
    (demo / "policy.toml").write_text(tomli_w.dumps(policy), encoding="utf-8")  # as `make demo` merges the presets into the default
    cli("gateway", "init", "--home", str(gateway), "--linkage-key-id", ring.current_linkage_key_id, "--policy", str(demo / "policy.toml"))
    cli("gateway", "user", "add", "--home", str(gateway), "--username", "tanaka", "--role", "caseworker", "--password-stdin",
        input=SECRETS["gateway:tanaka"] + "\n")
    (agent / "data").mkdir(parents=True)
    (agent / "mappings").mkdir()
    shutil.move(str(write_samples(demo / "samples", children=1500, seed=2026)["residents"]), agent / "data" / "residents.csv")
    shutil.copy(PRESET / "mappings" / "residents.toml", agent / "mappings" / "residents.toml")
    shutil.copy(PRESET / "policy.toml", agent / "policy.toml")
    cli("keys", "agent-init", "--home", str(agent), "--agent-id", "mynumber-1", "--passphrase-stdin", "--kdf-memory-kib", "1024",
        input=SECRETS["agent"] + "\n")
    cli("keys", "enrol", "--home", str(keys), "--agent-public", str(agent / "keys" / "agent-public.json"), "--passphrase-stdin",
        input=SECRETS["operator"] + "\n")
    (keys / "issuer-key.txt").write_text(ring.federation_vkey + "\n", encoding="utf-8")
    cli("keys", "agent-install", "--home", str(agent), "--wrapped", str(next((keys / "enrolments").glob("mynumber-1-*.json"))),
        "--issuer-key", str(keys / "issuer-key.txt"), "--passphrase-stdin", "--kdf-memory-kib", "1024", input=SECRETS["agent"] + "\n")
    shutil.copy(keys / "keys" / "escrow-public.json", agent / "escrow-public.json")
    (agent / "passphrase.txt").write_text(SECRETS["agent"] + "\n", encoding="utf-8")
    (agent / "passphrase.txt").chmod(0o600)
    (agent / "agent.toml").write_text("\n".join([
        "[agent]", 'id = "mynumber-1"', 'municipality = "000000"', 'network = "mynumber"', 'passphrase_file = "passphrase.txt"',
        'escrow_public_key = "escrow-public.json"', 'policy = "policy.toml"', "", "[[sources]]",
        'mapping = "mappings/residents.toml"', 'file = "data/residents.csv"']) + "\n", encoding="utf-8")
    cli("gateway", "agent", "register", "--home", str(gateway), "--agent-public", str(agent / "keys" / "agent-public.json"),
        "--network", "mynumber", "--source", "residents")


def test_demo_second_town_finds_a_child_across_the_border(tmp_path: Path) -> None:
    demo = tmp_path / ".demo"
    _demo_town(demo)
    story = run(demo)
    assert story["moved"] >= 1 and story["found"] == story["moved"] and story["answered"] == 1
    assert (demo / "gateway-b" / "federation.toml").exists() and (demo / "gateway" / "federation.toml").exists()
    assert oct((demo / "secrets-federation.json").stat().st_mode & 0o777) == "0o600"
