"""Three agents, one per preset, deliver a generated town to the real gateway: push over HTTPS (pinned self-signed
certificate) and bundles through `tsunagu gateway import`; a gateway that is down, then back, gets each submission once.

The gateway is `tsunagu gateway serve` in a subprocess on loopback; its setup goes through the real CLI.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import sqlite3
import ssl
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Iterator

import pytest
import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agents.core.config import load_config
from agents.core.pipeline import run
from synthetic.samples import write_samples
from tests.support.agents import AGENT_PASSPHRASE, PRESETS, Municipality, enrol_agent, write_agent_toml
from tests.support import server as _server
from tests.support.server import free_port

pytestmark = pytest.mark.slow

TSUNAGU = str(Path(sys.executable).with_name("tsunagu"))
REPO = Path(__file__).resolve().parents[3]

AGENTS = {  # agent id: (network, preset, [(mapping, sample file)], gaiji)
    "edu-1": ("edu", "edu_network", [("school.toml", "school.csv")], None),
    "mynumber-1": ("mynumber", "mynumber_network", [("residents.toml", "residents.csv"), ("maternal.toml", "maternal.tsv")], "gaiji.toml"),
    "internet-1": ("internet", "internet_network", [("npo.toml", "npo.csv"), ("csw.toml", "csw.xlsx")], None),
}


def tsunagu(*args: str, stdin: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("TSUNAGU_HOME", "TSUNAGU_DATABASE_URL")}
    r = subprocess.run([TSUNAGU, *args], input=stdin, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, f"{args[:3]} → {r.returncode}: {r.stdout}{r.stderr}"
    return r.stdout


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, as a municipality might pin for a loopback or LAN gateway."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tsunagu gateway (test)")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "gateway-cert.pem", directory / "gateway-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def municipal_policy(path: Path) -> Path:
    """The gateway's policy: the shipped default, with the presets' sources and attributes added."""
    document = tomllib.loads((REPO / "policy" / "default_policy.toml").read_text(encoding="utf-8"))
    for _, preset, _, _ in AGENTS.values():
        for network, spec in tomllib.loads((PRESETS / preset / "policy.toml").read_text(encoding="utf-8"))["networks"].items():
            document["networks"].setdefault(network, {"label": spec["label"], "sources": {}})["sources"].update(spec["sources"])
    path.write_text(tomli_w.dumps(document), encoding="utf-8")
    return path


class Server:
    """`tsunagu gateway serve` in a subprocess."""

    def __init__(self, home: Path, port: int, cert: Path, key: Path) -> None:
        self.home, self.port, self.cert, self.key = home, port, cert, key
        self.process: subprocess.Popen[bytes] | None = None
        self._tls = ssl.create_default_context(cafile=str(cert))

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("TSUNAGU_HOME", "TSUNAGU_DATABASE_URL")}
        self.process, _ = _server.start([TSUNAGU, "gateway", "serve", "--home", str(self.home), "--tls-cert", str(self.cert),
                                         "--tls-key", str(self.key)], "/api/v1/health", self.home.parent / "serve.out", env,
                                        port=self.port, scheme="https", verify=self._tls)

    def stop(self) -> None:
        if self.process is not None:
            _server.stop(self.process, timeout=600)  # a linkage run in progress finishes first; slow on a busy machine
            self.process = None


@pytest.fixture
def gateway(municipality: Municipality, tmp_path: Path) -> Iterator[Server]:
    home = tmp_path / "gateway"
    tsunagu("gateway", "init", "--home", str(home), "--linkage-key-id", municipality.ring.current_linkage_key_id,
            "--policy", str(municipal_policy(tmp_path / "policy.toml")))
    cert, key = self_signed(tmp_path)
    server = Server(home, free_port(), cert, key)
    server.start()
    yield server
    server.stop()


def submissions(gateway_home: Path) -> list[tuple[str, int, str, int]]:
    with sqlite3.connect(gateway_home / "gateway.db") as db:
        return db.execute("SELECT agent_id, sequence, source, accepted FROM submissions ORDER BY agent_id, sequence").fetchall()


def test_three_agents_deliver_a_town_to_the_real_gateway(municipality: Municipality, gateway: Server, tmp_path: Path) -> None:
    town_files = tmp_path / "town"
    write_samples(town_files, children=300, seed=11)
    configs = {}
    for agent_id, (network, preset, sources, gaiji) in AGENTS.items():
        home = tmp_path / agent_id
        home.mkdir()
        public = enrol_agent(municipality, home, agent_id)
        tsunagu("gateway", "agent", "register", "--home", str(gateway.home), "--agent-public", str(public), "--network", network,
                *[a for mapping, _ in sources for a in ("--source", tomllib.loads((PRESETS / preset / "mappings" / mapping).read_text(encoding="utf-8"))["source"])])
        push = network != "mynumber"  # the closed segment carries bundles
        write_agent_toml(home, agent_id, network,
                         [(PRESETS / preset / "mappings" / mapping, town_files / preset / data) for mapping, data in sources],
                         gateway=f"https://127.0.0.1:{gateway.port}" if push else None, ca_file=gateway.cert if push else None,
                         policy=PRESETS / preset / "policy.toml", gaiji=town_files / preset / gaiji if gaiji else None)
        configs[agent_id] = load_config(home / "agent.toml")

    # Push over HTTPS, verified against the pinned self-signed certificate.
    for agent_id in ("edu-1", "internet-1"):
        result = run(configs[agent_id], AGENT_PASSPHRASE)
        assert result.ok, result
        assert all(d.status == "delivered" and d.response["status"] == "accepted" and d.response["refused"] == []
                   for d in result.deliveries)

    # The closed segment writes bundles; they cross on media and are imported.
    bundle_dir = tmp_path / "usb"
    result = run(configs["mynumber-1"], AGENT_PASSPHRASE, bundle_out=bundle_dir)
    assert result.ok and len(result.deliveries) == 2
    for bundle in sorted(bundle_dir.glob("*.jsonl")):
        answer = json.loads(tsunagu("gateway", "import", "--home", str(gateway.home), str(bundle)))
        assert answer["status"] == "accepted" and answer["refused"] == []
        assert json.loads(tsunagu("gateway", "import", "--home", str(gateway.home), str(bundle)))["status"] == "duplicate"

    stored = submissions(gateway.home)
    counts = {(a, s): n for a, _, s, n in stored}
    sent = {(agent_id, source): encoded for agent_id, c in configs.items() for source, encoded in sent_counts(c.home).items()}
    assert counts == sent and all(n > 0 for n in counts.values())
    assert {s for _, s in counts} == {"school", "residents", "maternal", "npo", "csw"}

    # The gateway is down: the edu agent keeps its new snapshot; back up, the same bytes arrive once.
    school = town_files / "edu_network" / "school.csv"
    school.write_bytes(school.read_bytes() + "S9999999,小1,1,山田　一,やまだ　はじめ,H30.4.2,男,,,0,0,0,受診\r\n".encode("cp932"))
    gateway.stop()
    down = run(configs["edu-1"], AGENT_PASSPHRASE)
    assert not down.ok and down.outbox == 1 and down.deliveries[0].status == "pending"
    waiting = (configs["edu-1"].home / "outbox" / "0000000002.jsonl").read_bytes()
    gateway.start()
    up = run(configs["edu-1"], AGENT_PASSPHRASE)
    assert up.ok and up.sources[0].status == "unchanged" and up.deliveries[0].response["status"] == "accepted"
    assert [row for row in submissions(gateway.home) if row[0] == "edu-1"] == [
        ("edu-1", 1, "school", counts[("edu-1", "school")]), ("edu-1", 2, "school", counts[("edu-1", "school")] + 1)]
    sent_receipt = json.loads((configs["edu-1"].home / "sent" / "0000000002.json").read_text(encoding="utf-8"))
    assert sent_receipt["via"] == "push" and len(waiting) > 0

    # An agent the gateway does not know is refused (4xx): the submission is kept in refused/ and reported.
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    enrol_agent(municipality, stranger, "edu-2")
    write_agent_toml(stranger, "edu-2", "edu", [(PRESETS / "edu_network" / "mappings" / "school.toml", school)],
                     gateway=f"https://127.0.0.1:{gateway.port}", ca_file=gateway.cert, policy=PRESETS / "edu_network" / "policy.toml")
    refused = run(load_config(stranger / "agent.toml"), AGENT_PASSPHRASE)
    assert not refused.ok and refused.deliveries[0].status == "refused" and "登録されていません" in refused.deliveries[0].message
    assert (stranger / "refused" / "0000000001.jsonl").exists() and refused.outbox == 0

    # A gateway whose certificate is not the pinned one is not sent to: the submission waits in the outbox.
    other_ca, _ = self_signed(tmp_path / "stranger")
    write_agent_toml(stranger, "edu-2", "edu", [(PRESETS / "edu_network" / "mappings" / "school.toml", school)],
                     gateway=f"https://127.0.0.1:{gateway.port}", ca_file=other_ca, policy=PRESETS / "edu_network" / "policy.toml")
    unverified = run(load_config(stranger / "agent.toml"), AGENT_PASSPHRASE)
    assert unverified.deliveries[0].status == "pending" and "証明書を検証できません" in unverified.deliveries[0].message
    assert unverified.outbox == 1

    # The gateway links what the three segments sent: children found in several departments become one person.
    stats = json.loads(tsunagu("gateway", "link", "--home", str(gateway.home)))
    assert stats["sources"] == 5 and stats["records"] == sum(counts.values()) + 1
    assert stats["persons"] < stats["records"] * 0.7

    # Nothing the gateway wrote holds a department record id or a name in plaintext.
    written = b"".join(p.read_bytes() for p in gateway.home.rglob("*") if p.is_file())
    for line in school.read_text(encoding="cp932").splitlines()[1:20]:
        record_id, _, _, name = line.split(",")[:4]
        assert record_id.encode() not in written and name.encode("utf-8") not in written



def sent_counts(home: Path) -> dict[str, int]:
    """Records sent per source in the agent's last run, from its status.json."""
    status = json.loads((home / "status.json").read_text(encoding="utf-8"))
    return {s["source"]: s["encoded"] for s in status["sources"] if s["status"] == "sent"}
