"""Fixtures: a municipality's keys and enrolled agent homes built with the real key library (small Argon2id costs)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from keys import custody, enrolment
from keys.keyring import Keyring, init_municipality
from keys.passphrase import KdfParams

PRESETS = Path(__file__).resolve().parents[2] / "agents"
KDF = KdfParams(memory_kib=1024, iterations=1, lanes=1)
OPERATOR = "operator-passphrase-1"
AGENT_PASSPHRASE = "agent-passphrase-xyz"


@dataclass
class Municipality:
    """The key administrator's home."""

    home: Path
    ring: Keyring


@pytest.fixture
def municipality(tmp_path: Path) -> Municipality:
    home = tmp_path / "admin"
    init_municipality(home, "000000", [custody.Custodian("佐藤", "custodian-pass-1"), custody.Custodian("鈴木", "custodian-pass-2")],
                      2, OPERATOR, KDF)
    return Municipality(home, Keyring(home))


def enrol_agent(municipality: Municipality, home: Path, agent_id: str) -> Path:
    """Create an agent's keys in ``home``, enrol it and install its wrapped linkage secret; returns the public key file."""
    public_path = enrolment.init_agent(home, agent_id, AGENT_PASSPHRASE, KDF)
    ring = municipality.ring
    wrapped = enrolment.AgentRegistry(municipality.home).enrol(
        enrolment.read_agent_public(public_path), ring.linkage_secret(OPERATOR), ring.federation_signer(OPERATOR), home / "incoming")
    enrolment.install_linkage_secret(home, wrapped, AGENT_PASSPHRASE, params=KDF)
    shutil.copy(municipality.home / "keys" / "escrow-public.json", home / "escrow-public.json")
    passphrase = home / "passphrase.txt"
    passphrase.write_text(AGENT_PASSPHRASE + "\n", encoding="utf-8")
    passphrase.chmod(0o600)
    return public_path


def write_agent_toml(home: Path, agent_id: str, network: str, sources: list[tuple[str, Path]], *, gateway: str | None = None,
                     ca_file: Path | None = None, policy: Path | None = None, gaiji: Path | None = None,
                     extra_gateway: str = "attempts = 2\nbackoff_seconds = 0.01\ntimeout_seconds = 120\n") -> Path:
    """Write ``home/agent.toml``; ``sources`` are (mapping file, data file) pairs."""
    lines = ["[agent]", f'id = "{agent_id}"', 'municipality = "000000"', f'network = "{network}"',
             'passphrase_file = "passphrase.txt"', 'escrow_public_key = "escrow-public.json"']
    if policy is not None:
        lines.append(f'policy = "{policy}"')
    if gaiji is not None:
        lines.append(f'gaiji = "{gaiji}"')
    if gateway is not None:
        lines += ["", "[gateway]", f'url = "{gateway}"'] + ([f'ca_file = "{ca_file}"'] if ca_file else []) + [extra_gateway]
    for mapping, data in sources:
        lines += ["", "[[sources]]", f'mapping = "{mapping}"', f'file = "{data}"']
    path = home / "agent.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
