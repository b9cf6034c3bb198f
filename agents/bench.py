"""Agent throughput: ``python -m agents.bench [--records 50000]`` prints records per second, end to end.

Generates a 住民記録 export (CP932, with 外字) of a synthetic town, enrols a
throwaway agent with real keys, and times one ``tsunagu agent run`` as the
agent does it (read, validate, normalise, encode, seal, sign, outbox, bundle
file), then each step on its own. The target is 20,000 records/s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from agents.core.config import load_config, load_mapping
from agents.core.encode import SourceInput, encode_and_seal
from agents.core.pipeline import load_gaiji, load_policy_for, run
from agents.core.read import read_table
from agents.core.submission import build_submission
from agents.core.validate import validate
from agents.samples import RESIDENT_COLUMNS, _write_csv, resident_rows
from keys import custody, enrolment
from keys.keyring import Keyring, init_municipality
from keys.passphrase import KdfParams
from linkage.synthetic import generate_town

PRESET = Path(__file__).resolve().parent / "mynumber_network"
_KDF = KdfParams(memory_kib=1024, iterations=1, lanes=1)  # throwaway keys; the cost of unlocking is not what is measured
_PASSPHRASE = "bench-passphrase-only"


def _setup(root: Path, records: int, seed: int) -> Path:
    admin, home = root / "admin", root / "agent"
    init_municipality(admin, "000000", [custody.Custodian("a", "bench-custodian-1"), custody.Custodian("b", "bench-custodian-2")],
                      2, _PASSPHRASE, _KDF)
    ring = Keyring(admin)
    public = enrolment.init_agent(home, "bench-1", _PASSPHRASE, _KDF)
    wrapped = enrolment.AgentRegistry(admin).enrol(enrolment.read_agent_public(public), ring.linkage_secret(_PASSPHRASE),
                                                   ring.federation_signer(_PASSPHRASE), root / "enrol")
    enrolment.install_linkage_secret(home, wrapped, _PASSPHRASE, params=_KDF)
    shutil.copy(admin / "keys" / "escrow-public.json", home / "escrow-public.json")
    town = generate_town(n_children=records, seed=seed)
    gaiji: dict[str, str] = {}
    cities = ["011002", "131016", "271004"]
    _write_csv(home / "residents.csv", RESIDENT_COLUMNS, resident_rows(town, cities), "cp932", gaiji=gaiji)
    (home / "gaiji.toml").write_text("[gaiji]\n" + "".join(f'"U+{ord(c):04X}" = "{ch}"\n' for ch, c in gaiji.items()), encoding="utf-8")
    (home / "agent.toml").write_text(
        '[agent]\nid = "bench-1"\nmunicipality = "000000"\nnetwork = "mynumber"\nescrow_public_key = "escrow-public.json"\n'
        f'policy = "{PRESET / "policy.toml"}"\ngaiji = "gaiji.toml"\n\n'
        f'[[sources]]\nmapping = "{PRESET / "mappings" / "residents.toml"}"\nfile = "residents.csv"\n', encoding="utf-8")
    return home / "agent.toml"


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(prog="python -m agents.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tsunagu-agent-bench-") as tmp:
        root = Path(tmp)
        config_path = _setup(root, args.records, args.seed)
        config = load_config(config_path)
        size = (config.home / "residents.csv").stat().st_size
        print(f"入力: 住民記録 {args.records:,} 件（CP932、{size / 1e6:.1f} MB）、CPU {os.cpu_count()} コア")

        start = time.perf_counter()
        result = run(config, _PASSPHRASE, bundle_out=root / "bundle")
        total = time.perf_counter() - start
        source = result.sources[0]
        bundle = next((root / "bundle").glob("*.jsonl"))
        print(f"エンドツーエンド（tsunagu agent run --bundle-out）: {source.encoded:,} 件を {total:.2f} 秒 "
              f"→ {source.encoded / total:,.0f} 件/秒（提出ファイル {bundle.stat().st_size / 1e6:.1f} MB、送らない行 {source.problems}）")

        mapping, gaiji, policy = load_mapping(config.sources[0].mapping), load_gaiji(config), load_policy_for(config)
        agent = enrolment.load_agent_keys(config.home, _PASSPHRASE)
        linkage = enrolment.load_linkage_secret(config.home, _PASSPHRASE)
        escrow = custody.read_escrow_public(config.agent.escrow_public_key)
        steps = []
        t = time.perf_counter()
        table = read_table(config.sources[0].file, mapping, gaiji)
        steps.append(("read", time.perf_counter() - t))
        t = time.perf_counter()
        validated = validate(table, mapping)
        steps.append(("validate", time.perf_counter() - t))
        t = time.perf_counter()
        sealed = encode_and_seal([SourceInput(mapping, str(table.path), validated, "b-bench")], linkage, escrow, policy, "mynumber")[0]
        steps.append(("normalise+encode+seal", time.perf_counter() - t))
        t = time.perf_counter()
        build_submission(config, agent, escrow, linkage.key_id, sealed, 999, "b-bench")
        steps.append(("submission+sign", time.perf_counter() - t))
        n = len(table.rows)
        for name, seconds in steps:
            print(f"  {name:<24} {seconds:6.2f} 秒  {n / seconds:>12,.0f} 件/秒")


if __name__ == "__main__":
    main()
