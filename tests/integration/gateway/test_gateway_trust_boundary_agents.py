"""Trust boundary 1 with the real agent pipeline: three preset agents deliver a town (push, and bundles through the
server's drop folder); after the linkage run nothing the gateway wrote names a child."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path

import pytest
import tomli_w

from agents.core.config import load_config
from agents.core.pipeline import run
from synthetic.samples import write_samples
from tests.support.gateway import Home, cli, start_server, stop_server, wait_for_run
from synthetic import generate_town
from tests.integration.gateway.test_gateway_trust_boundary import find_hits, identity_needles
from tests.support.agents import AGENT_PASSPHRASE, PRESETS, enrol_agent, municipality, write_agent_toml  # noqa: F401 - fixture

pytestmark = pytest.mark.slow

CHILDREN, SEED = 300, 23
AGENTS = {  # agent id: (network, preset, [(mapping, sample file)], 外字 table)
    "edu-1": ("edu", "edu_network", [("school.toml", "school.csv")], None),
    "mynumber-1": ("mynumber", "mynumber_network", [("residents.toml", "residents.csv"), ("maternal.toml", "maternal.tsv")], "gaiji.toml"),
    "internet-1": ("internet", "internet_network", [("npo.toml", "npo.csv"), ("csw.toml", "csw.xlsx")], None),
}


def _policy(path: Path) -> Path:
    """The shipped default policy with the presets' sources and attributes added (as a municipality would)."""
    document = tomllib.loads((Path(__file__).resolve().parents[3] / "policy" / "default_policy.toml").read_text(encoding="utf-8"))
    for _, preset, _, _ in AGENTS.values():
        for network, spec in tomllib.loads((PRESETS / preset / "policy.toml").read_text(encoding="utf-8"))["networks"].items():
            document["networks"].setdefault(network, {"label": spec["label"], "sources": {}})["sources"].update(spec["sources"])
    path.write_text(tomli_w.dumps(document), encoding="utf-8")
    return path


def _scan(root: Path, needles) -> dict[str, list]:
    """Every file under ``root`` (but the operator's policy.toml) searched for the needles.

    A link run the server started may still be closing its database connection (a run outlives a server that
    had to be killed): SQLite then removes its -wal/-shm files, whose pages are now in gateway.db. A scan that
    met a vanished file is done again, so what was in the write-ahead log is read where it went.
    """
    for _ in range(10):
        hits, vanished = {}, False
        for path in sorted(p for p in root.rglob("*") if p.name != "policy.toml"):
            try:
                if path.is_file():
                    hits[str(path.relative_to(root))] = find_hits(path.read_bytes(), needles)
            except FileNotFoundError:
                vanished = True
        if not vanished:
            return hits
        time.sleep(2)
    raise AssertionError("files under the gateway's home kept vanishing: is a process still writing there?")


def test_real_agents_leave_no_identity_in_the_gateway(municipality, tmp_path: Path) -> None:  # noqa: ANN001 - fixture
    home = Home(tmp_path / "gateway", {})
    drop = tmp_path / "drop"
    cli(["gateway", "init", "--home", str(home.path), "--linkage-key-id", municipality.ring.current_linkage_key_id,
         "--policy", str(_policy(tmp_path / "policy.toml")), "--drop-folder", str(drop)])
    for role in ("admin", "caseworker", "analyst"):
        home.cli("user", "add", "--username", role, "--role", role, "--password-stdin", input="correct horse battery staple\n")
    files = tmp_path / "town"
    write_samples(files, children=CHILDREN, seed=SEED)
    server = start_server(home, {"TSUNAGU_DROP_POLL_SECONDS": "0.5"})
    try:
        for agent_id, (network, preset, sources, gaiji) in AGENTS.items():
            agent_home = tmp_path / agent_id
            agent_home.mkdir()
            public = enrol_agent(municipality, agent_home, agent_id)
            names = [tomllib.loads((PRESETS / preset / "mappings" / m).read_text(encoding="utf-8"))["source"] for m, _ in sources]
            home.cli("agent", "register", "--agent-public", str(public), "--network", network, *[a for n in names for a in ("--source", n)])
            push = network != "mynumber"  # the closed segment carries bundles to the drop folder
            write_agent_toml(agent_home, agent_id, network, [(PRESETS / preset / "mappings" / m, files / preset / f) for m, f in sources],
                             gateway=server.base_url if push else None, policy=PRESETS / preset / "policy.toml",
                             gaiji=files / preset / gaiji if gaiji else None)
            result = run(load_config(agent_home / "agent.toml"), AGENT_PASSPHRASE, bundle_out=None if push else drop)
            assert result.ok, result
        deadline = time.monotonic() + 300  # a safety net only: a busy 2-core CI machine can take minutes to start a server
        while [p for p in drop.iterdir() if p.is_file()] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(list((drop / "imported").iterdir())) == 2 and not list((drop / "rejected").iterdir())
        stats = wait_for_run(server)
        while stats["sources"] < 5:  # a run may have started before the last source arrived
            stats = wait_for_run(server, stats["id"])
        assert stats["persons"] < stats["records"]
        exports = home.path / "exports"
        exports.mkdir()
        with server.client("caseworker") as c:
            for p in c.get("/api/v1/persons", params={"min_sources": 2, "limit": 30}).json()["persons"]:
                c.get(f"/api/v1/persons/{p['person_id']}/timeline")
        with server.client("analyst") as c:
            (exports / "persons.csv").write_bytes(c.get("/api/v1/exports/persons.csv").content)
            (exports / "persons.parquet").write_bytes(c.get("/api/v1/exports/persons.parquet").content)
    finally:
        stop_server(server)

    needles = identity_needles(generate_town(n_children=CHILDREN, seed=SEED))
    # policy.toml is the operator's own text (its 「マイナンバー」 holds the reading マイ); everything else came from the gateway.
    hits = _scan(home.path, needles)
    assert {"gateway.db", "logs/gateway.log", "exports/persons.csv"} <= set(hits)
    assert {where: found for where, found in hits.items() if found} == {}
